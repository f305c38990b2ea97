-- title: Google accounts with no JumpCloud user
-- description: Accounts JumpCloud does not manage: nobody suspends them when the person leaves.
select g.primary_email, g.name_full_name, g.org_unit_path, g.suspended, g.last_login_time, g.creation_time
from google.users g
where not exists (select 1 from jumpcloud.users j where lower(j.email) = lower(g.primary_email))
order by g.suspended, g.primary_email
