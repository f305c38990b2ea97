-- title: Applications reachable by users without MFA
-- description: Per application, the active people who can reach it (directly or through a group) without a second factor.
select a.display_label as application, count(distinct u.id) as users_without_mfa
from jumpcloud.applications a
join jumpcloud.user_application_access x on x.application_id = a.id
join jumpcloud.users u on u.id = x.user_id
where u.state = 'ACTIVATED'
  and not coalesce(u.suspended, false)
  and not coalesce(u.mfa_configured, false)
group by a.display_label
order by users_without_mfa desc, application
