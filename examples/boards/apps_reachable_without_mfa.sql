-- title: Applications reachable by users without MFA
-- description: Per application, the active people who can reach it (directly or through a group) without a second factor.
-- People without MFA are picked first, so only their paths to applications are expanded.
with no_mfa as (
  select id from jumpcloud.users
  where state = 'ACTIVATED'
    and not coalesce(suspended, false)
    and not coalesce(mfa_configured, false)
),
reach as (
  select au.application_id, au.user_id
  from jumpcloud.application_users au
  join no_mfa n on n.id = au.user_id
  union
  select ag.application_id, m.user_id
  from jumpcloud.user_group_members m
  join no_mfa n on n.id = m.user_id
  join jumpcloud.application_user_groups ag on ag.group_id = m.group_id
)
select a.display_label as application, count(*) as users_without_mfa
from reach r
join jumpcloud.applications a on a.id = r.application_id
group by a.display_label
order by users_without_mfa desc, application
