//! The JumpCloud tables, one definition each. Adding a table is one definition in [`all_tables`]
//! plus its simulator route; the client, cache, catalog, `.fields` and the tests iterate over
//! this list. v1 paths (`/systemusers`) answer `{totalCount, results}`; v2 paths (`/v2/…`) a
//! JSON array with `x-total-count`.

use std::sync::LazyLock;

use crate::table::Kind::*;
use crate::table::{Column, Source, TableDef, ViewDef};

fn users() -> TableDef {
    TableDef::new(
        "users",
        "People in the directory (v1 /systemusers).",
        Source::List { path: "/systemusers" },
        Some("email"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the user.").named("id"),
            Column::new("username", Text, "Login name, unique in the org."),
            Column::new("email", Text, "Primary email address, unique in the org."),
            Column::new("firstname", Text, "First name."),
            Column::new("middlename", Text, "Middle name."),
            Column::new("lastname", Text, "Last name."),
            Column::new("displayname", Text, "Name shown in the console and user portal."),
            Column::new("state", Text, "STAGED, ACTIVATED or SUSPENDED."),
            Column::new("activated", Bool, "Whether the user has activated the account (may disagree with state)."),
            Column::new("suspended", Bool, "Whether the account is suspended."),
            Column::new("account_locked", Bool, "Locked after too many failed logins."),
            Column::new("account_locked_date", Timestamp, "When the account was locked."),
            Column::new("mfa.configured", Bool, "The user has set up an MFA factor."),
            Column::new("mfa.exclusion", Bool, "The user is excluded from MFA."),
            Column::new("mfa.exclusionDays", Int, "Days of MFA exclusion granted."),
            Column::new("mfa.exclusionUntil", Timestamp, "When the MFA exclusion ends."),
            Column::new("mfaEnrollment.overallStatus", Text, "MFA enrollment status overall."),
            Column::new("mfaEnrollment.totpStatus", Text, "TOTP enrollment status."),
            Column::new("mfaEnrollment.webAuthnStatus", Text, "WebAuthn enrollment status."),
            Column::new("mfaEnrollment.pushStatus", Text, "Push (JumpCloud Protect) enrollment status."),
            Column::new("mfaEnrollment.jcGoStatus", Text, "JumpCloud Go enrollment status."),
            Column::new("totp_enabled", Bool, "TOTP MFA is enabled for the user."),
            Column::new("enable_user_portal_multifactor", Bool, "MFA required for the user portal."),
            Column::new("password_date", Timestamp, "When the password was last set."),
            Column::new("password_expired", Bool, "The password has expired."),
            Column::new("password_never_expires", Bool, "The password is exempt from expiry."),
            Column::new("password_expiration_date", Timestamp, "When the password expires."),
            Column::new("external_password_expiration_date", Timestamp, "Password expiry in the external directory."),
            Column::new("passwordless_sudo", Bool, "May sudo without a password on bound devices."),
            Column::new("sudo", Bool, "Has sudo (admin) rights on bound devices."),
            Column::new("department", Text, "Department."),
            Column::new("jobTitle", Text, "Job title."),
            Column::new("company", Text, "Company."),
            Column::new("costCenter", Text, "Cost center."),
            Column::new("employeeIdentifier", Text, "Employee id from HR."),
            Column::new("employeeType", Text, "Employee type (full-time, contractor, ...)."),
            Column::new("location", Text, "Office or location."),
            Column::new("description", Text, "Free-text description."),
            Column::new("manager", Reference, "Id of the user's manager (a users.id).").refers_to("users"),
            Column::new("alternateEmail", Text, "Alternate email address."),
            Column::new("recoveryEmail.address", Text, "Recovery email address."),
            Column::new("recoveryEmail.verified", Bool, "The recovery email is verified."),
            Column::new("recoveryEmail.verifiedAt", Timestamp, "When the recovery email was verified."),
            Column::new("managedAppleId", Text, "Managed Apple ID."),
            Column::new("systemUsername", Text, "Local account name on devices, when it differs from username."),
            Column::new("unix_uid", Int, "UNIX user id on bound devices."),
            Column::new("unix_guid", Int, "UNIX group id on bound devices."),
            Column::new("badLoginAttempts", Int, "Failed logins since the last success."),
            Column::new("allow_public_key", Bool, "May log in to devices with an SSH key."),
            Column::new("ldap_binding_user", Bool, "Is an LDAP binding (service) user."),
            Column::new("samba_service_user", Bool, "Is a Samba service user."),
            Column::new("enable_managed_uid", Bool, "UID/GID are managed by JumpCloud."),
            Column::new("disableDeviceMaxLoginAttempts", Bool, "Device lockout after failed logins is off."),
            Column::new("externally_managed", Bool, "Managed by an external directory (deprecated)."),
            Column::new("external_dn", Text, "Distinguished name in the external directory."),
            Column::new("external_source_type", Text, "Kind of external directory."),
            Column::new("creationSource", Text, "How the user was created."),
            Column::new("delegatedAuthority.id", Text, "Id of the delegated authority (an identity provider)."),
            Column::new("delegatedAuthority.name", Text, "Name of the delegated authority."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("created", Timestamp, "When the user was created."),
            Column::new("addresses", Json, "Postal addresses (JSON array)."),
            Column::new("phoneNumbers", Json, "Phone numbers (JSON array)."),
            Column::new("attributes", Json, "Custom attributes (JSON array of {name, value})."),
            Column::new("relationships", Json, "Relationships to other people (JSON array)."),
            Column::new("restrictedFields", Json, "Fields an external directory owns (JSON array)."),
            Column::new("ssh_keys", Json, "Public SSH keys (JSON array)."),
            Column::new("admin", Json, "Admin role, when the user is also an administrator (JSON)."),
        ],
    )
    .with_spec("systemuserreturn")
}

fn user_groups() -> TableDef {
    TableDef::new(
        "user_groups",
        "User groups (v2 /usergroups).",
        Source::List { path: "/v2/usergroups" },
        Some("name"),
        &["id"],
        vec![
            Column::new("id", Text, "JumpCloud id of the group."),
            Column::new("name", Text, "Group name, unique in the org."),
            Column::new("description", Text, "Description."),
            Column::new("type", Text, "Always user_group."),
            Column::new("membershipMethod", Text, "NOTSET, STATIC, DYNAMIC_REVIEW_REQUIRED or DYNAMIC_AUTOMATED."),
            Column::new("email", Text, "Group email address."),
            Column::new("attributes.sudo.enabled", Bool, "Members get sudo on devices bound to the group.")
                .named("sudo_enabled"),
            Column::new("attributes.sudo.withoutPassword", Bool, "Members get passwordless sudo.")
                .named("sudo_without_password"),
            Column::new("attributes.sambaEnabled", Bool, "Samba is enabled for the group.").named("samba_enabled"),
            Column::new(
                "attributes",
                Json,
                "All group attributes (JSON: sudo, ldapGroups, posixGroups, radius, custom).",
            ),
            Column::new("memberQuery", Json, "Rule of a dynamic group (JSON)."),
            Column::new("memberQueryErrorFlags", Json, "Problems with the dynamic rule (JSON array)."),
            Column::new("memberQueryExemptions", Json, "Objects exempted from the dynamic rule (JSON array)."),
            Column::new("memberSuggestionsNotify", Bool, "Admins are emailed membership suggestions."),
            Column::new("suggestionCounts.add", Int, "Suggested additions pending review."),
            Column::new("suggestionCounts.remove", Int, "Suggested removals pending review."),
            Column::new("suggestionCounts.total", Int, "All suggestions pending review."),
            Column::new("organizationObjectId", Text, "Id of the organization.").named("organization_id"),
        ],
    )
    .with_spec("UserGroup")
}

fn devices() -> TableDef {
    TableDef::new(
        "devices",
        "Devices (systems) running the JumpCloud agent (v1 /systems).",
        Source::List { path: "/systems" },
        Some("display_name"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the device.").named("id"),
            Column::new("displayName", Text, "Name shown in the console."),
            Column::new("hostname", Text, "Host name reported by the agent."),
            Column::new("serialNumber", Text, "Hardware serial number."),
            Column::new("os", Text, "Operating system (Windows, Mac OS X, Ubuntu, ...)."),
            Column::new("osFamily", Text, "OS family (windows, darwin, linux)."),
            Column::new("version", Text, "OS version."),
            Column::new("arch", Text, "Architecture as reported (e.g. 64-bit, arm64)."),
            Column::new("archFamily", Text, "Architecture family."),
            Column::new("agentVersion", Text, "JumpCloud agent version."),
            Column::new("active", Bool, "The agent is connected now."),
            Column::new("lastContact", Timestamp, "When the agent last checked in."),
            Column::new("created", Timestamp, "When the device was enrolled."),
            Column::new("fde.active", Bool, "Full-disk encryption is on."),
            Column::new("fde.keyPresent", Bool, "JumpCloud holds the recovery key."),
            Column::new("remoteIP", Text, "Public IP address last seen."),
            Column::new("primarySystemUser.id", Text, "Id of the device's primary user (a users.id).")
                .refers_to("users"),
            Column::new("description", Text, "Description."),
            Column::new("hwVendor", Text, "Hardware vendor."),
            Column::new("templateName", Text, "Agent template."),
            Column::new("systemTimezone", Int, "Time zone offset in hours."),
            Column::new("fileSystem", Text, "File system."),
            Column::new("displayManager", Text, "Display manager (Linux)."),
            Column::new("amazonInstanceID", Text, "EC2 instance id."),
            Column::new("remoteAssistAgentVersion", Text, "Remote assist agent version."),
            Column::new("agentHasFullDiskAccess", Bool, "macOS: the agent has full disk access."),
            Column::new("allowMultiFactorAuthentication", Bool, "MFA on login is allowed."),
            Column::new("allowPublicKeyAuthentication", Bool, "SSH key login is allowed."),
            Column::new("allowSshPasswordAuthentication", Bool, "SSH password login is allowed."),
            Column::new("allowSshRootLogin", Bool, "SSH root login is allowed."),
            Column::new("sshRootEnabled", Bool, "Root SSH is enabled."),
            Column::new("modifySSHDConfig", Bool, "JumpCloud manages sshd_config."),
            Column::new("azureAdJoined", Bool, "Windows: joined to Entra ID."),
            Column::new("desktopCapable", Bool, "Has a desktop."),
            Column::new("hasServiceAccount", Bool, "macOS: has the JumpCloud service account."),
            Column::new("isPolicyBound", Bool, "Bound to at least one policy."),
            Column::new("domainInfo.domainName", Text, "Windows domain name."),
            Column::new("domainInfo.partOfDomain", Bool, "Windows: joined to a domain."),
            Column::new("secureLogin.enabled", Bool, "Secure login is enabled."),
            Column::new("secureLogin.supported", Bool, "Secure login is supported."),
            Column::new("systemInsights.state", Text, "System Insights state."),
            Column::new("serviceAccountState.hasSecureToken", Bool, "macOS service account has a secure token."),
            Column::new("serviceAccountState.passwordAPFSValid", Bool, "macOS service account APFS password is valid."),
            Column::new("serviceAccountState.passwordODValid", Bool, "macOS service account OD password is valid."),
            Column::new("osVersionDetail.osName", Text, "OS name in detail."),
            Column::new("osVersionDetail.distributionName", Text, "Linux distribution."),
            Column::new("osVersionDetail.releaseName", Text, "Release name."),
            Column::new("osVersionDetail.version", Text, "Full OS version."),
            Column::new("osVersionDetail.major", Text, "Major version."),
            Column::new("osVersionDetail.minor", Text, "Minor version."),
            Column::new("osVersionDetail.patch", Text, "Patch version."),
            Column::new("osVersionDetail.revision", Text, "Revision."),
            Column::new("osVersionDetail.majorNumber", Int, "Major version number."),
            Column::new("osVersionDetail.minorNumber", Int, "Minor version number."),
            Column::new("osVersionDetail.patchNumber", Int, "Patch version number."),
            Column::new("policyStats.total", Int, "Policies bound."),
            Column::new("policyStats.success", Int, "Policies applied."),
            Column::new("policyStats.failed", Int, "Policies failed."),
            Column::new("policyStats.pending", Int, "Policies pending."),
            Column::new("policyStats.duplicate", Int, "Duplicate policies."),
            Column::new("policyStats.unsupportedOs", Int, "Policies unsupported on this OS."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("mdm", Json, "MDM enrollment (JSON)."),
            Column::new("networkInterfaces", Json, "Network interfaces (JSON array)."),
            Column::new("attributes", Json, "Custom attributes (JSON array)."),
            Column::new("builtInCommands", Json, "Built-in commands available (JSON array)."),
            Column::new("userMetrics", Json, "Local accounts seen by the agent (JSON array)."),
            Column::new("sshdParams", Json, "sshd parameters (JSON array)."),
            Column::new("connectionHistory", Json, "Recent connections (JSON array)."),
            Column::new("provisionMetadata", Json, "How the device was provisioned (JSON)."),
        ],
    )
    .with_spec("JcSystem")
    .with_volatile(&["last_contact", "remote_ip", "agent_version", "active", "connection_history", "user_metrics"])
}

fn applications() -> TableDef {
    TableDef::new(
        "applications",
        "SSO applications (v1 /applications).",
        Source::List { path: "/applications" },
        Some("display_label"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the application.").named("id"),
            Column::new("name", Text, "Catalog key of the application (e.g. aws-sso)."),
            Column::new("displayLabel", Text, "Label the admin gave the application."),
            Column::new("displayName", Text, "Catalog name of the application."),
            Column::new("ssoUrl", Text, "IdP-initiated SSO URL."),
            Column::new("active", Bool, "The application is active."),
            Column::new("beta", Bool, "A beta connector."),
            Column::new("created", Timestamp, "When the application was added."),
            Column::new("description", Text, "Description."),
            Column::new("learnMore", Text, "Documentation link."),
            Column::new("color", Text, "Tile color."),
            Column::new("logo.url", Text, "Logo URL."),
            Column::new("logo.color", Text, "Logo color."),
            Column::new("parentApp", Text, "Parent application id."),
            Column::new("sso.type", Text, "SSO protocol (saml, oidc, ...)."),
            Column::new("sso.jit", Bool, "Just-in-time provisioning is on."),
            Column::new("sso.hidden", Bool, "Hidden from the user portal."),
            Column::new("sso.beta", Bool, "SSO connector is beta."),
            Column::new("sso.idpCertExpirationAt", Timestamp, "When the IdP certificate expires."),
            Column::new("sso.idpCertificateUpdatedAt", Timestamp, "When the IdP certificate was replaced."),
            Column::new("sso.spCertificateUpdatedAt", Timestamp, "When the SP certificate was replaced."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("config", Json, "Connector configuration (JSON; private keys and secrets removed)."),
            Column::new("databaseAttributes", Json, "Attribute mappings (JSON array)."),
        ],
    )
    .with_spec("application")
}

fn administrators() -> TableDef {
    TableDef::new(
        "administrators",
        "Administrators of the org: who can change it (v1 /users).",
        Source::List { path: "/users" },
        Some("email"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the administrator.").named("id"),
            Column::new("email", Text, "Login email of the administrator."),
            Column::new("firstname", Text, "First name."),
            Column::new("lastname", Text, "Last name."),
            Column::new(
                "roleName",
                Text,
                "Role (Administrator With Billing, Administrator, Manager, Help Desk, Read Only, Command Runner, ...).",
            ),
            Column::new("role", Text, "Id of the role."),
            Column::new("roleNames", Json, "Every role name the administrator holds (JSON array)."),
            Column::new("enableMultiFactor", Bool, "MFA is required at this administrator's login."),
            Column::new("totpEnrolled", Bool, "The administrator has enrolled a TOTP authenticator."),
            Column::new("totpUpdatedAt", Timestamp, "When the TOTP enrollment last changed."),
            Column::new("suspended", Bool, "The administrator account is suspended."),
            Column::new("apiKeyAllowed", Bool, "The administrator may use an API key."),
            Column::new("apiKeySet", Bool, "The administrator has generated an API key."),
            Column::new("apiKeyUpdatedAt", Timestamp, "When the API key was last generated."),
            Column::new("passwordUpdatedAt", Timestamp, "When the password was last changed."),
            Column::new("sessionCount", Int, "Console sessions open now."),
            Column::new("usersTimeZone", Text, "The administrator's time zone."),
            Column::new("provider", Text, "Id of the managed service provider, for MSP administrators."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("created", Timestamp, "When the administrator was added."),
        ],
    )
    .with_spec("userreturn")
}

fn device_groups() -> TableDef {
    TableDef::new(
        "device_groups",
        "Device (system) groups (v2 /systemgroups).",
        Source::List { path: "/v2/systemgroups" },
        Some("name"),
        &["id"],
        vec![
            Column::new("id", Text, "JumpCloud id of the device group."),
            Column::new("name", Text, "Group name, unique in the org."),
            Column::new("description", Text, "Description."),
            Column::new("type", Text, "Always system_group."),
            Column::new("membershipMethod", Text, "NOTSET, STATIC, DYNAMIC_REVIEW_REQUIRED or DYNAMIC_AUTOMATED."),
            Column::new("email", Text, "Group email address."),
            Column::new("attributes", Json, "Group attributes (JSON)."),
            Column::new("memberQuery", Json, "Rule of a dynamic group (JSON)."),
            Column::new("memberQueryExemptions", Json, "Devices exempted from the dynamic rule (JSON array)."),
            Column::new("memberSuggestionsNotify", Bool, "Admins are emailed membership suggestions."),
            Column::new("organizationObjectId", Text, "Id of the organization.").named("organization_id"),
        ],
    )
    .with_spec("SystemGroup")
}

fn policies() -> TableDef {
    TableDef::new(
        "policies",
        "Device policies, each an instance of a policy template (v2 /policies).",
        Source::List { path: "/v2/policies" },
        Some("name"),
        &["id"],
        vec![
            Column::new("id", Text, "JumpCloud id of the policy."),
            Column::new("name", Text, "Name the admin gave the policy."),
            Column::new("template.id", Text, "Id of the policy template."),
            Column::new("template.name", Text, "Unique name of the template (e.g. disk_encryption_darwin)."),
            Column::new("template.displayName", Text, "The template's display name."),
            Column::new(
                "template.osMetaFamily",
                Text,
                "OS family the policy applies to (darwin, windows, linux, ...).",
            ),
            Column::new("template.description", Text, "What the template does."),
            Column::new("template.state", Text, "Release state of the template."),
            Column::new("template.deliveryTypes", Json, "How the policy is delivered (agent, mdm; JSON array)."),
        ],
    )
    .with_spec("Policy")
}

fn directory_events() -> TableDef {
    TableDef::new(
        "directory_events",
        "The Directory Insights event log: logins, SSO, RADIUS, device and admin events (POST /insights/directory/v1/events).",
        Source::Log { path: "/insights/directory/v1/events", time_column: "timestamp" },
        Some("id"),
        &["id"],
        vec![
            Column::new("id", Text, "Id of the event."),
            Column::new("timestamp", Timestamp, "When it happened."),
            Column::new("event_type", Text, "What happened (admin_login_attempt, sso_auth, radius_auth, user_update, ...)."),
            Column::new("service", Text, "Where it happened (directory, sso, radius, systems, ldap, mdm, ...)."),
            Column::new("success", Bool, "Whether it succeeded (logins, authentications)."),
            Column::new("mfa", Bool, "A second factor was used."),
            Column::new("client_ip", Text, "Address the request came from."),
            Column::new("username", Text, "The user who authenticated, for login events."),
            Column::new("initiated_by.id", Text, "Id of who did it (an administrator or a user)."),
            Column::new("initiated_by.type", Text, "admin, user or system."),
            Column::new("initiated_by.email", Text, "Email of who did it."),
            Column::new("resource.id", Text, "Id of the object acted on."),
            Column::new("resource.type", Text, "Kind of the object acted on (user, user_group, system, application, ...)."),
            Column::new("resource.name", Text, "Name of the object acted on."),
            Column::new("resource.email", Text, "Email of the object acted on, when it is a person."),
            Column::new("application.display_label", Text, "The SSO application, for sso events.")
                .named("application_name"),
            Column::new("geoip.country_code2", Text, "Country of the client address.").named("geoip_country_code"),
            Column::new("geoip.region_name", Text, "Region of the client address."),
            Column::new("geoip.timezone", Text, "Time zone of the client address."),
            Column::new("useragent.name", Text, "Browser or client name."),
            Column::new("useragent.os", Text, "Client operating system."),
            Column::new("useragent.device", Text, "Client device."),
            Column::new("auth_method", Text, "How the user authenticated (password, mfa, ...)."),
            Column::new("error_message", Text, "Why it failed, when it did."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("changes", Json, "What changed: [{field, from, to}] (JSON array)."),
            Column::new(crate::table::decode::WHOLE_RECORD, Json, "The whole event (JSON, secrets removed).")
                .named("event"),
        ],
    )
    .with_max_age(std::time::Duration::from_secs(300))
}

/// A graph (edge) table fetched once per parent: `{parent_col}` is the parent's id and
/// `{target_col}` the `to.id` of each edge.
struct Edge {
    name: &'static str,
    description: &'static str,
    parent: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    parent_col: &'static str,
    target_col: &'static str,
    /// The table whose rows the edges point to.
    target: &'static str,
    key: &'static [&'static str],
}

impl Edge {
    fn table(self, extra: Vec<Column>) -> TableDef {
        let mut columns = vec![
            Column::new("parent", ParentId, "Id of the object the edge starts from.").named(self.parent_col),
            Column::new("to.id", Text, "Id of the object the edge points to.")
                .named(self.target_col)
                .refers_to(self.target),
        ];
        columns.extend(extra);
        let source = Source::PerParent { parent: self.parent, path: self.path, query: self.query };
        TableDef::new(self.name, self.description, source, None, self.key, columns).with_spec("GraphConnection")
    }
}

fn user_group_members() -> TableDef {
    Edge {
        name: "user_group_members",
        description: "Direct members of each user group (v2 /usergroups/{id}/members).",
        parent: "user_groups",
        path: "/v2/usergroups/{id}/members",
        query: &[],
        parent_col: "group_id",
        target_col: "user_id",
        target: "users",
        key: &["user_id"],
    }
    .table(vec![])
}

fn device_users() -> TableDef {
    Edge {
        name: "device_users",
        description: "Users bound to each device (v2 /systems/{id}/associations?targets=user).",
        parent: "devices",
        path: "/v2/systems/{id}/associations",
        query: &[("targets", "user")],
        parent_col: "device_id",
        target_col: "user_id",
        target: "users",
        key: &["user_id"],
    }
    .table(vec![
        Column::new("attributes.sudo.enabled", Bool, "The user has sudo on this device.").named("sudo_enabled"),
        Column::new("attributes.sudo.withoutPassword", Bool, "The user has passwordless sudo on this device.")
            .named("sudo_without_password"),
    ])
}

fn application_user_groups() -> TableDef {
    Edge {
        name: "application_user_groups",
        description: "User groups bound to each application (v2 /applications/{id}/associations?targets=user_group).",
        parent: "applications",
        path: "/v2/applications/{id}/associations",
        query: &[("targets", "user_group")],
        parent_col: "application_id",
        target_col: "group_id",
        target: "user_groups",
        key: &["group_id"],
    }
    .table(vec![])
}

fn application_users() -> TableDef {
    Edge {
        name: "application_users",
        description: "Users bound directly to each application (v2 /applications/{id}/associations?targets=user).",
        parent: "applications",
        path: "/v2/applications/{id}/associations",
        query: &[("targets", "user")],
        parent_col: "application_id",
        target_col: "user_id",
        target: "users",
        key: &["user_id"],
    }
    .table(vec![])
}

fn device_group_members() -> TableDef {
    Edge {
        name: "device_group_members",
        description: "Devices in each device group (v2 /systemgroups/{id}/members).",
        parent: "device_groups",
        path: "/v2/systemgroups/{id}/members",
        query: &[],
        parent_col: "group_id",
        target_col: "device_id",
        target: "devices",
        key: &["device_id"],
    }
    .table(vec![])
}

fn policy_statuses() -> TableDef {
    let source = Source::PerParent { parent: "policies", path: "/v2/policies/{id}/policystatuses", query: &[] };
    TableDef::new(
        "policy_statuses",
        "How each policy applied on each device (v2 /policies/{id}/policystatuses).",
        source,
        None,
        &["id"],
        vec![
            Column::new("parent", ParentId, "Id of the policy.").named("policy_id"),
            Column::new("systemID", Text, "Id of the device (a devices.id).").named("device_id").refers_to("devices"),
            Column::new("id", Text, "Id of the policy result."),
            Column::new("success", Bool, "The policy applied successfully."),
            Column::new("state", Text, "success, failed or pending."),
            Column::new("exitStatus", Int, "Exit status of applying the policy."),
            Column::new("startedAt", Timestamp, "When applying started."),
            Column::new("endedAt", Timestamp, "When applying ended."),
            Column::new("detail", Text, "Details of the result."),
            Column::new("stdOut", Text, "Output of applying the policy."),
            Column::new("stdErr", Text, "Errors of applying the policy."),
        ],
    )
    .with_spec("PolicyResult")
}

static TABLES: LazyLock<Vec<TableDef>> = LazyLock::new(|| {
    vec![
        users(),
        user_groups(),
        devices(),
        applications(),
        user_group_members(),
        device_users(),
        application_user_groups(),
        application_users(),
        administrators(),
        device_groups(),
        device_group_members(),
        policies(),
        policy_statuses(),
        directory_events(),
    ]
    .into_iter()
    .chain(super::insights::tables())
    .collect()
});

/// Every JumpCloud table, parents before the relation tables that need them.
pub fn all_tables() -> &'static [TableDef] {
    &TABLES
}

/// The definition of `name` (`users`; a schema prefix such as `jumpcloud.` is ignored).
pub fn table(name: &str) -> Option<&'static TableDef> {
    let name = name.rsplit('.').next().unwrap_or(name);
    TABLES.iter().find(|t| t.name == name)
}

/// Views over the tables above, created in the connection's schema.
pub static VIEWS: &[ViewDef] = &[ViewDef {
    name: "user_application_access",
    sql: "SELECT au.user_id, au.application_id, CAST(NULL AS VARCHAR) AS via_group_id \
          FROM {schema}.application_users au \
          UNION ALL \
          SELECT m.user_id, ag.application_id, ag.group_id AS via_group_id \
          FROM {schema}.application_user_groups ag \
          JOIN {schema}.user_group_members m ON m.group_id = ag.group_id",
    description: "Every path by which a user reaches an application: directly (via_group_id NULL) or through a group.",
    references: &[("user_id", "users"), ("application_id", "applications"), ("via_group_id", "user_groups")],
    clustered_by: Some("application_id"),
}];

#[cfg(test)]
mod decode_tests {
    //! The decoder on JumpCloud's shapes (`_id` and `id`, nested and reference fields, secrets).
    use crate::jumpcloud::tables;
    use crate::table::decode::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use serde_json::Value;

    fn decode(table: &str, parent: Option<&str>, body: &str) -> PageRows {
        let def = tables::table(table).expect("table");
        let mut de = serde_json::Deserializer::from_str(body);
        let (page, rows) = TablePage { def, parent, fetched_at_us: 7 }.decode_records(&mut de).expect("decodes");
        de.end().expect("nothing after the array");
        assert_eq!(rows as usize, page.batch.num_rows());
        page
    }

    fn text(page: &PageRows, col: &str) -> Vec<Option<String>> {
        let a = page.batch.column_by_name(col).expect(col).as_string::<i32>();
        (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect()
    }

    #[test]
    fn fields_land_in_their_columns_and_the_rest_is_skipped() {
        let page = decode(
            "users",
            None,
            r#"[
              {"_id": null, "id": "u1", "username": "ann\u00e9", "unknown": {"deep": [1, {"x": 2}]},
               "mfa": {"configured": true, "exclusionUntil": "2026-01-02T03:04:05Z", "other": [1]},
               "manager": {"_id": "m1"}, "unix_uid": "5001", "badLoginAttempts": 3.0,
               "attributes": [{"name": "costCenter", "value": "7", "apiToken": "t0p"}],
               "suspended": "true", "created": 1700000000000},
              {"_id": "u2", "id": "ignored", "username": "bo", "mfa": null, "manager": "m2",
               "unix_uid": 18446744073709551615, "attributes": "plain", "suspended": 1}
            ]"#,
        );
        assert_eq!(text(&page, "id"), [Some("u1".into()), Some("u2".into())]);
        assert_eq!(text(&page, "username"), [Some("anné".into()), Some("bo".into())]);
        assert_eq!(text(&page, "manager_id"), [Some("m1".into()), Some("m2".into())]);
        assert_eq!(
            text(&page, "attributes"),
            [Some(r#"[{"name":"costCenter","value":"7"}]"#.into()), Some(r#""plain""#.into())]
        );
        let b = page.batch.column_by_name("mfa_configured").expect("col").as_boolean();
        assert_eq!((b.value(0), b.is_null(1)), (true, true));
        let s = page.batch.column_by_name("suspended").expect("col").as_boolean();
        assert_eq!((s.value(0), s.is_null(1)), (true, true));
        let uid = page.batch.column_by_name("unix_uid").expect("col").as_primitive::<Int64Type>();
        assert_eq!((uid.value(0), uid.value(1)), (5001, u64::MAX as f64 as i64));
        let bad = page.batch.column_by_name("bad_login_attempts").expect("col").as_primitive::<Int64Type>();
        assert_eq!(bad.value(0), 3);
        let ts = |c: &str| page.batch.column_by_name(c).expect(c).as_primitive::<TimestampMicrosecondType>().clone();
        assert_eq!(ts("mfa_exclusion_until").value(0), 1_767_323_045_000_000);
        assert_eq!(ts("created").value(0), 1_700_000_000_000_000);
        assert!(ts("created").is_null(1));
        assert_eq!(ts("_fetched_at").value(1), 7);
        assert_eq!(page.keys.len(), 2);
    }

    #[test]
    fn relation_rows_carry_their_parent_and_key() {
        let page = decode(
            "device_users",
            Some("d1"),
            r#"[{"to": {"id": "u1", "type": "user"}, "attributes": {"sudo": {"enabled": true, "withoutPassword": false}}},
                {"to": {"id": "u2", "type": "user"}, "attributes": null}]"#,
        );
        assert_eq!(text(&page, "device_id"), [Some("d1".into()), Some("d1".into())]);
        assert_eq!(text(&page, "user_id"), [Some("u1".into()), Some("u2".into())]);
        let sudo = page.batch.column_by_name("sudo_enabled").expect("col").as_boolean();
        assert_eq!((sudo.value(0), sudo.is_null(1)), (true, true));
        assert_eq!(page.keys, ["d1\u{1f}u1", "d1\u{1f}u2"]);
    }

    #[test]
    fn decoding_a_value_matches_decoding_its_text() {
        let body = r#"[{"_id": "g1", "name": "Eng \"core\"", "attributes": {"sudo": {"enabled": true}},
                        "memberQuery": {"filters": [{"field": "department", "value": "Eng"}]}}]"#;
        let parsed = decode("user_groups", None, body);
        let values: Vec<Value> = serde_json::from_str(body).expect("json");
        let def = tables::table("user_groups").expect("table");
        let from_values = def.to_batch(&values, None, 7).expect("batch");
        assert_eq!(parsed.batch, from_values);
        assert_eq!(text(&parsed, "name"), [Some("Eng \"core\"".into())]);
        // `attributes` is read whole (JSON text) and in parts (sudo_enabled).
        assert_eq!(text(&parsed, "attributes"), [Some(r#"{"sudo":{"enabled":true}}"#.into())]);
        assert!(parsed.batch.column_by_name("sudo_enabled").expect("col").as_boolean().value(0));
    }

    #[test]
    fn a_broken_page_is_an_error_not_a_panic() {
        let def = tables::table("users").expect("table");
        for body in [r#"[{"_id": "u1", "username": "#, r#"{"results": []}"#, r#"[{"_id": "u1"} 7]"#] {
            let mut de = serde_json::Deserializer::from_str(body);
            assert!(TablePage { def, parent: None, fetched_at_us: 0 }.decode_records(&mut de).is_err(), "{body}");
        }
    }
}

#[cfg(test)]
mod view_tests {
    #[test]
    fn the_access_view_reads_the_bindings_and_the_memberships() {
        let reads: Vec<&str> = super::VIEWS[0].reads().collect();
        assert_eq!(reads, ["application_users", "application_user_groups", "user_group_members"]);
    }
}
