-- title: Applications reachable by users without MFA
-- description: Per application, the active people who can reach it (directly or through a group) without a second factor.
with no_mfa as (
  select id from jumpcloud.users
  where state = 'ACTIVATED'
    and not coalesce(suspended, false)
    and not coalesce(mfa_configured, false)
),
reach as (
  select application_id, count(distinct user_id) as users_without_mfa
  from jumpcloud.user_application_access
  where user_id in (select id from no_mfa)
  group by application_id
)
select a.display_label as application, r.users_without_mfa
from reach r
join jumpcloud.applications a on a.id = r.application_id
order by users_without_mfa desc, application
