-- title: Suspended in JumpCloud, still in Google groups
-- description: People JumpCloud suspended who still belong to Google groups (shared drives, mailing lists, calendars); offboard_user(email) takes them out everywhere.
-- key: email, google_group
select j.email, gr.email as google_group, m.role, g.suspended as suspended_in_google
from jumpcloud.users j
join google.users g on lower(g.primary_email) = lower(j.email)
join google.group_members m on m.member_id = g.id
join google.groups gr on gr.id = m.group_id
where j.suspended
order by j.email, google_group
