-- title: Users in no group
-- description: People who get nothing through groups: often new hires or forgotten accounts.
select u.email, u.state, u.department
from jumpcloud.users u
where not exists (select 1 from jumpcloud.user_group_members m where m.user_id = u.id)
order by u.email
