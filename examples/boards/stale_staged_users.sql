-- title: Staged users older than 30 days
-- description: Accounts created but never activated: an onboarding that stalled.
select u.email, u.displayname, u.department, u.created
from jumpcloud.users u
where u.state = 'STAGED'
  and u.created < now() - interval '30 days'
order by u.created
