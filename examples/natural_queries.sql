-- Analyst SQL written the natural way (no hand tuning), run by examples/bench.rs in jcsql and
-- in DuckDB on the same data (Parquet exported by jcsql). Each query follows a `-- name:` line.

-- name: users_by_state
select state, count(*) as users from jumpcloud.users group by state order by users desc, state;

-- name: no_mfa_by_department
select department, count(*) as users
from jumpcloud.users
where state = 'ACTIVATED' and not mfa_configured
group by department
order by department;

-- name: distinct_users_per_app
select a.display_label, count(distinct x.user_id) as users
from jumpcloud.user_application_access x
join jumpcloud.applications a on a.id = x.application_id
join jumpcloud.users u on u.id = x.user_id
where u.state = 'ACTIVATED'
group by a.display_label
order by users desc, a.display_label
limit 20;

-- name: apps_reachable_without_mfa
select a.display_label as application, count(distinct u.id) as users_without_mfa
from jumpcloud.applications a
join jumpcloud.user_application_access x on x.application_id = a.id
join jumpcloud.users u on u.id = x.user_id
where u.state = 'ACTIVATED' and not u.suspended and not u.mfa_configured
group by a.display_label
order by users_without_mfa desc, application;

-- name: users_in_no_group
select count(*) as users
from jumpcloud.users u
where not exists (select 1 from jumpcloud.user_group_members m where m.user_id = u.id);

-- name: suspended_users_with_devices
select u.email, count(*) as devices
from jumpcloud.users u
join jumpcloud.device_users du on du.user_id = u.id
join jumpcloud.devices d on d.id = du.device_id
where u.suspended
group by u.email
order by devices desc, u.email
limit 50;

-- name: largest_groups
select g.name, count(m.user_id) as members
from jumpcloud.user_groups g
left join jumpcloud.user_group_members m on m.group_id = g.id
group by g.name
order by members desc, g.name
limit 20;

-- name: groups_per_department
select u.department, count(distinct m.group_id) as groups, count(*) as memberships
from jumpcloud.users u
join jumpcloud.user_group_members m on m.user_id = u.id
group by u.department
order by u.department;

-- name: devices_by_os
select os, count(*) as devices, count(distinct du.user_id) as users
from jumpcloud.devices d
left join jumpcloud.device_users du on du.device_id = d.id
group by os
order by devices desc, os;

-- name: people_by_email_domain
select split_part(email, '@', 2) as domain, count(*) as users
from jumpcloud.users
group by domain
order by users desc, domain;

-- name: software_inventory
select name, version, count(distinct device_id) as devices
from (
  select bundle_name as name, bundle_short_version as version, device_id from jumpcloud.device_apps
  union all
  select name, version, device_id from jumpcloud.device_programs
) software
group by name, version
order by devices desc, name, version;
