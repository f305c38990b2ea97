//! The actions, one definition each. Adding an action is one entry here plus its simulator
//! route: the SQL function, `.actions`, `.action NAME`, permissions, the plan display, the
//! audit log and the tests that iterate over [`ACTIONS`] all follow from it.

use reqwest::Method;
use serde_json::{Value, json};

use super::{ActionDef, Call, Check, Input, Patch, Request};

pub static ACTIONS: &[ActionDef] = &[
    ActionDef {
        name: "create_user_group",
        does: "create a user group",
        inputs: &[Input::text("name").shown_as("group"), Input::text("description").optional()],
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
        patch: |_, body| match body {
            Some(group) => vec![Patch::Append { table: "user_groups", record: group.clone(), parent: None }],
            None => Vec::new(),
        },
    },
    ActionDef {
        name: "add_user_to_group",
        does: "add a user to a group",
        inputs: &[Input::user(), Input::group()],
        enabled_by_default: true,
        check: None,
        request: |call| member_change(call, "add"),
        outcomes: &[(200, "added"), (204, "added"), (409, "already_member")],
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
        enabled_by_default: true,
        check: None,
        request: |call| member_change(call, "remove"),
        outcomes: &[(200, "removed"), (204, "removed"), (404, "not_member")],
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
        // Locking people out is not something to allow by accident.
        enabled_by_default: false,
        check: Some(Check {
            path: user_path,
            holds: |user| user["suspended"] == json!(true),
            status: "already_suspended",
        }),
        request: |call| Request { method: Method::PUT, path: user_path(call), body: json!({"suspended": true}) },
        outcomes: &[(200, "suspended")],
        patch: replace_user,
    },
    ActionDef {
        name: "unsuspend_user",
        does: "unsuspend a user (lets them back in)",
        inputs: &[Input::user()],
        enabled_by_default: false,
        check: Some(Check { path: user_path, holds: |user| user["suspended"] != json!(true), status: "not_suspended" }),
        request: |call| Request { method: Method::PUT, path: user_path(call), body: json!({"suspended": false}) },
        outcomes: &[(200, "unsuspended")],
        patch: replace_user,
    },
];

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
