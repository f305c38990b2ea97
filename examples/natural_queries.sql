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

-- name: apps_per_user_top10
select u.username, count(distinct x.application_id) as apps
from jumpcloud.user_application_access x
join jumpcloud.users u on u.id = x.user_id
group by u.username
order by apps desc, u.username
limit 10;

-- name: users_in_no_group_not_exists
select count(*) as users
from jumpcloud.users u
where not exists (select 1 from jumpcloud.user_group_members m where m.user_id = u.id);

-- name: groups_per_user_distribution
select groups, count(*) as users
from (
  select u.id, count(m.group_id) as groups
  from jumpcloud.users u
  left join jumpcloud.user_group_members m on m.user_id = u.id
  group by u.id
) t
group by groups
order by groups;

-- name: devices_per_user_top10
select u.email, count(*) as devices
from jumpcloud.device_users du
join jumpcloud.users u on u.id = du.user_id
group by u.email
order by devices desc, u.email
limit 10;

-- name: device_os_by_department
select u.department, d.os, count(distinct d.id) as devices
from jumpcloud.users u
join jumpcloud.device_users du on du.user_id = u.id
join jumpcloud.devices d on d.id = du.device_id
group by u.department, d.os
order by u.department, d.os;

-- name: top_groups_in_each_department
select department, name, members
from (
  select u.department, g.name, count(*) as members,
         row_number() over (partition by u.department order by count(*) desc, g.name) as rn
  from jumpcloud.user_group_members m
  join jumpcloud.users u on u.id = m.user_id
  join jumpcloud.user_groups g on g.id = m.group_id
  group by u.department, g.name
) t
where rn <= 3
order by department, rn;

-- name: apps_nobody_reaches
select a.display_label
from jumpcloud.applications a
where not exists (select 1 from jumpcloud.user_application_access x where x.application_id = a.id)
order by a.display_label;

-- name: access_by_department
select u.department, count(distinct x.application_id) as apps, count(distinct x.user_id) as people
from jumpcloud.user_application_access x
join jumpcloud.users u on u.id = x.user_id
group by u.department
order by u.department;

-- name: inactive_devices_by_os
select os, sum(case when active then 0 else 1 end) as inactive, count(*) as devices
from jumpcloud.devices
group by os
order by os;

-- name: managers_with_most_reports
select m.email, count(*) as reports
from jumpcloud.users u
join jumpcloud.users m on m.id = u.manager_id
group by m.email
order by reports desc, m.email
limit 10;

-- name: direct_and_group_access_per_app
select a.display_label,
       sum(case when x.via_group_id is null then 1 else 0 end) as direct,
       sum(case when x.via_group_id is null then 0 else 1 end) as via_group
from jumpcloud.user_application_access x
join jumpcloud.applications a on a.id = x.application_id
group by a.display_label
order by via_group desc, a.display_label
limit 20;

-- name: programs_by_publisher
select publisher, count(distinct device_id) as devices, count(*) as installs
from jumpcloud.device_programs
group by publisher
order by installs desc, publisher
limit 10;

-- name: users_created_per_month_running_total
select month, users, sum(users) over (order by month) as running_total
from (
  select date_trunc('month', created) as month, count(*) as users
  from jumpcloud.users
  group by date_trunc('month', created)
) t
order by month;
