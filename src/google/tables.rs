//! The Google Workspace tables (Directory API), one definition each, with the same column rule
//! as JumpCloud's: a JSON path becomes its snake_case name (`name.fullName` → `name_full_name`).
//! The static part of each list's query rides in its path; the connector adds `customer`,
//! `pageToken`.

use std::sync::LazyLock;

use crate::table::Kind::*;
use crate::table::{Column, Source, TableDef, ViewDef};

fn users() -> TableDef {
    TableDef::new(
        "users",
        "People in the Google Workspace account (Directory API users.list, projection=full).",
        Source::List { path: "/users?projection=full&maxResults=500" },
        Some("primary_email"),
        &["id"],
        vec![
            Column::new("id", Text, "Google's id of the user (21 digits, kept as text)."),
            Column::new("primaryEmail", Text, "Primary email address; JumpCloud syncs users with Google by it."),
            Column::new("name.fullName", Text, "Full name."),
            Column::new("name.givenName", Text, "First name."),
            Column::new("name.familyName", Text, "Last name."),
            Column::new("isAdmin", Bool, "Super administrator."),
            Column::new("isDelegatedAdmin", Bool, "Delegated administrator (an admin role short of super admin)."),
            Column::new("suspended", Bool, "The account is suspended."),
            Column::new("suspensionReason", Text, "Why Google or an admin suspended the account."),
            Column::new("archived", Bool, "The account is archived."),
            Column::new("isEnrolledIn2Sv", Bool, "The user has enrolled in 2-step verification."),
            Column::new("isEnforcedIn2Sv", Bool, "2-step verification is enforced for the user."),
            Column::new("changePasswordAtNextLogin", Bool, "Must change the password at next login."),
            Column::new("lastLoginTime", Timestamp, "Last login; NULL when never (Google sends 1970-01-01)."),
            Column::new("creationTime", Timestamp, "When the account was created."),
            Column::new("orgUnitPath", Text, "Organizational unit, e.g. /Engineering."),
            Column::new("customerId", Text, "The Google Workspace customer id."),
            Column::new("isMailboxSetup", Bool, "The Gmail mailbox exists."),
            Column::new("aliases", Json, "Email aliases (JSON array)."),
            Column::new("emails", Json, "Every email address of the user (JSON array)."),
        ],
    )
    .with_spec("User")
}

fn groups() -> TableDef {
    TableDef::new(
        "groups",
        "Groups in the Google Workspace account (Directory API groups.list).",
        Source::List { path: "/groups?maxResults=200" },
        Some("email"),
        &["id"],
        vec![
            Column::new("id", Text, "Google's id of the group."),
            Column::new("email", Text, "The group's email address."),
            Column::new("name", Text, "Display name."),
            Column::new("description", Text, "Description."),
            Column::new("directMembersCount", Int, "Direct members (users and groups)."),
            Column::new("adminCreated", Bool, "Created by an administrator rather than a user."),
            Column::new("aliases", Json, "Email aliases (JSON array)."),
        ],
    )
    .with_spec("Group")
}

fn group_members() -> TableDef {
    TableDef::new(
        "group_members",
        "Direct members of each group (Directory API members.list per group).",
        Source::PerParent { parent: "groups", path: "/groups/{id}/members", query: &[("maxResults", "200")] },
        None,
        &["member_id"],
        vec![
            Column::new("group", ParentId, "Id of the group.").named("group_id"),
            Column::new("id", Text, "Google's id of the member (a user's id, or a group's).")
                .named("member_id")
                .refers_to("users"),
            Column::new("email", Text, "The member's email address."),
            Column::new("role", Text, "OWNER, MANAGER or MEMBER."),
            Column::new("type", Text, "USER, GROUP or CUSTOMER."),
            Column::new("status", Text, "ACTIVE, SUSPENDED, …"),
        ],
    )
    .with_spec("Member")
}

static TABLES: LazyLock<Vec<TableDef>> = LazyLock::new(|| vec![users(), groups(), group_members()]);

/// Every Google table, parents before the relation tables that need them.
pub fn all_tables() -> &'static [TableDef] {
    &TABLES
}

pub static VIEWS: &[ViewDef] = &[];
