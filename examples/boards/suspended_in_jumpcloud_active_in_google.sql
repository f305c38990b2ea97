-- title: Suspended in JumpCloud, still active in Google
-- description: JumpCloud suspended the person, but their Google account still signs in to mail and Drive.
select j.email, j.displayname, j.state, g.last_login_time as last_google_login, g.org_unit_path
from jumpcloud.users j
join google.users g on lower(g.primary_email) = lower(j.email)
where j.suspended and not g.suspended and not g.archived
order by g.last_login_time desc nulls last, j.email
