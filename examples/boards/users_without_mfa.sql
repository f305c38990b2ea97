-- title: Active users without MFA
-- description: Activated, unsuspended users who have not set up a second factor.
select u.email, u.displayname, u.department, u.created
from jumpcloud.users u
where u.state = 'ACTIVATED'
  and not coalesce(u.suspended, false)
  and not coalesce(u.mfa_configured, false)
order by u.department, u.email
