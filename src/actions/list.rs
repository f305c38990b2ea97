//! The actions, one definition each. Adding an action is one entry here plus its simulator
//! route: the SQL function, `.actions`, `.action NAME`, permissions, the plan display, the
//! audit log and the tests that iterate over [`ACTIONS`] all follow from it.

use reqwest::Method;
use serde_json::{Value, json};

use super::{ActionDef, Call, Check, Input, Patch, Request, Tool};

pub static ACTIONS: &[ActionDef] = &[
    ActionDef {
        name: "create_user_group",
        does: "create a user group",
        inputs: &[Input::text("name").shown_as("group"), Input::text("description").optional()],
        tool: Tool::JumpCloud,
        enabled_by_default: true,
        check: None,
        request: |call| {
            let mut body = json!({"name": call.label(0)});
            if !call.label(1).is_empty() {
                body["description"] = json!(call.label(1));
            }
            Request { method: Method::POST, path: "/v2/usergroups".into(), body }
        },
        outcomes: &[(200, "created"), (201, "created"), (409, "exists")],
        explain: None,
        patch: |_, body| match body {
            Some(group) => vec![Patch::Append { table: "user_groups", record: group.clone(), parent: None }],
            None => Vec::new(),
        },
    },
    ActionDef {
        name: "add_user_to_group",
        does: "add a user to a group",
        inputs: &[Input::user(), Input::group()],
        tool: Tool::JumpCloud,
        enabled_by_default: true,
        check: None,
        request: |call| member_change(call, "add"),
        outcomes: &[(200, "added"), (204, "added"), (409, "already_member")],
        explain: None,
        patch: |call, _| {
            vec![Patch::Append {
                table: "user_group_members",
                record: json!({"to": {"id": call.id(0), "type": "user"}, "attributes": null}),
                parent: Some(call.id(1).to_string()),
            }]
        },
    },
    ActionDef {
        name: "remove_user_from_group",
        does: "remove a user from a group",
        inputs: &[Input::user(), Input::group()],
        tool: Tool::JumpCloud,
        enabled_by_default: true,
        check: None,
        request: |call| member_change(call, "remove"),
        outcomes: &[(200, "removed"), (204, "removed"), (404, "not_member")],
        explain: None,
        patch: |call, _| {
            vec![Patch::Remove {
                table: "user_group_members",
                matching: vec![("group_id", call.id(1).to_string()), ("user_id", call.id(0).to_string())],
            }]
        },
    },
    ActionDef {
        name: "suspend_user",
        does: "suspend a user (locks them out of everything JumpCloud manages)",
        inputs: &[Input::user()],
        tool: Tool::JumpCloud,
        // Locking people out is not something to allow by accident.
        enabled_by_default: false,
        check: Some(Check {
            path: user_path,
            holds: |user| user["suspended"] == json!(true),
            status: "already_suspended",
        }),
        request: |call| Request { method: Method::PUT, path: user_path(call), body: json!({"suspended": true}) },
        outcomes: &[(200, "suspended")],
        explain: None,
        patch: replace_user,
    },
    ActionDef {
        name: "unsuspend_user",
        does: "unsuspend a user (lets them back in)",
        inputs: &[Input::user()],
        tool: Tool::JumpCloud,
        enabled_by_default: false,
        check: Some(Check { path: user_path, holds: |user| user["suspended"] != json!(true), status: "not_suspended" }),
        request: |call| Request { method: Method::PUT, path: user_path(call), body: json!({"suspended": false}) },
        outcomes: &[(200, "unsuspended")],
        explain: None,
        patch: replace_user,
    },
    // Google Workspace (DESIGN §5a): each changes people's access, so none runs until enabled.
    ActionDef {
        name: "suspend_google_user",
        does: "suspend a Google Workspace user (ends their Gmail, Drive and Google sign-ins)",
        inputs: &[Input::google_user()],
        tool: Tool::Google,
        enabled_by_default: false,
        check: Some(Check {
            path: google_user_path,
            holds: |user| user["suspended"] == json!(true),
            status: "already_suspended",
        }),
        request: |call| Request { method: Method::PUT, path: google_user_path(call), body: json!({"suspended": true}) },
        outcomes: &[(200, "suspended")],
        explain: None,
        patch: replace_google_user,
    },
    ActionDef {
        name: "unsuspend_google_user",
        does: "unsuspend a Google Workspace user",
        inputs: &[Input::google_user()],
        tool: Tool::Google,
        enabled_by_default: false,
        check: Some(Check {
            path: google_user_path,
            holds: |user| user["suspended"] != json!(true),
            status: "not_suspended",
        }),
        request: |call| Request {
            method: Method::PUT,
            path: google_user_path(call),
            body: json!({"suspended": false}),
        },
        outcomes: &[(200, "unsuspended")],
        explain: Some(|call, status, _| {
            (status == 412).then(|| {
                format!(
                    "error: Google itself suspended {} (for abuse); only Google can lift it (Admin console → the user → Restore, or Google support)",
                    call.label(0)
                )
            })
        }),
        patch: replace_google_user,
    },
    ActionDef {
        name: "sign_out_google_user",
        does: "sign a Google Workspace user out of every browser and device",
        inputs: &[Input::google_user()],
        tool: Tool::Google,
        enabled_by_default: false,
        check: None,
        request: |call| Request {
            method: Method::POST,
            path: format!("{}/signOut", google_user_path(call)),
            body: Value::Null,
        },
        outcomes: &[(200, "signed_out"), (204, "signed_out")],
        explain: None,
        patch: |_, _| Vec::new(),
    },
    ActionDef {
        name: "add_user_to_google_group",
        does: "add a user to a Google group",
        inputs: &[Input::google_user(), Input::google_group()],
        tool: Tool::Google,
        enabled_by_default: false,
        check: None,
        request: |call| Request {
            method: Method::POST,
            path: format!("/groups/{}/members", call.id(1)),
            body: json!({"email": call.label(0), "role": "MEMBER"}),
        },
        outcomes: &[(200, "added"), (409, "already_member")],
        explain: None,
        patch: |call, body| match body {
            Some(member) if member.is_object() => vec![Patch::Append {
                table: "group_members",
                record: member.clone(),
                parent: Some(call.id(1).to_string()),
            }],
            _ => Vec::new(),
        },
    },
    ActionDef {
        name: "remove_user_from_google_group",
        does: "remove a user from a Google group",
        inputs: &[Input::google_user(), Input::google_group()],
        tool: Tool::Google,
        enabled_by_default: false,
        check: None,
        request: |call| Request {
            method: Method::DELETE,
            path: format!("/groups/{}/members/{}", call.id(1), call.id(0)),
            body: Value::Null,
        },
        outcomes: &[(200, "removed"), (204, "removed"), (404, "not_member")],
        // Google answers 404 for a group that is gone too; that one is an error.
        explain: Some(|call, status, message| {
            (status == 404 && message.contains("groupKey"))
                .then(|| format!("error: no such Google group {}", call.label(1)))
        }),
        patch: |call, _| {
            vec![Patch::Remove {
                table: "group_members",
                matching: vec![("group_id", call.id(1).to_string()), ("member_id", call.id(0).to_string())],
            }]
        },
    },
    // Every tool at once: the steps are the actions above, each under its own permission.
    ActionDef {
        name: "offboard_user",
        does: "offboard a person everywhere: sign out of Google, leave every Google and JumpCloud group, suspend in both",
        inputs: &[Input::user()],
        tool: Tool::Every,
        enabled_by_default: false,
        check: None,
        request: |_| Request { method: Method::GET, path: String::new(), body: Value::Null },
        outcomes: &[],
        explain: None,
        patch: |_, _| Vec::new(),
    },
];

fn google_user_path(call: &Call) -> String {
    format!("/users/{}", call.id(0))
}

/// `PUT /users/{userKey}` answers the user as it now is: that row replaces the cached one
/// ("never logged in" read as the sync reads it: NULL, not 1970).
fn replace_google_user(call: &Call, body: Option<&Value>) -> Vec<Patch> {
    match body {
        Some(user) if user.is_object() => {
            let mut record = user.clone();
            if record["lastLoginTime"].as_str().is_some_and(|t| t.starts_with("1970-01-01")) {
                record["lastLoginTime"] = Value::Null;
            }
            vec![Patch::Replace { table: "users", id: call.id(0).to_string(), record }]
        }
        _ => Vec::new(),
    }
}

fn member_change(call: &Call, op: &str) -> Request {
    Request {
        method: Method::POST,
        path: format!("/v2/usergroups/{}/members", call.id(1)),
        body: json!({"op": op, "type": "user", "id": call.id(0)}),
    }
}

fn user_path(call: &Call) -> String {
    format!("/systemusers/{}", call.id(0))
}

/// `PUT /systemusers/{id}` answers the user as it now is: that row replaces the cached one.
fn replace_user(call: &Call, body: Option<&Value>) -> Vec<Patch> {
    match body {
        Some(user) if user.is_object() => {
            vec![Patch::Replace { table: "users", id: call.id(0).to_string(), record: user.clone() }]
        }
        _ => Vec::new(),
    }
}
