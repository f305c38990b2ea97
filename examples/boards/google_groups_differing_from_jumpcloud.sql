-- title: Google groups whose members differ from the JumpCloud group of the same name
-- description: Who is in one and not the other, group by group (matched by name, people by email).
with jc as (
  select g.name as group_name, lower(u.email) as email
  from jumpcloud.user_groups g
  join jumpcloud.user_group_members m on m.group_id = g.id
  join jumpcloud.users u on u.id = m.user_id
),
gw as (
  select g.name as group_name, lower(m.email) as email
  from google.groups g
  join google.group_members m on m.group_id = g.id
  where m.type = 'USER'
),
both_named as (
  select name from jumpcloud.user_groups intersect select name from google.groups
)
select coalesce(jc.group_name, gw.group_name) as group_name,
       coalesce(jc.email, gw.email) as email,
       case when gw.email is null then 'only in JumpCloud' else 'only in Google' end as where_found
from jc
full join gw on gw.group_name = jc.group_name and gw.email = jc.email
where (jc.email is null or gw.email is null)
  and coalesce(jc.group_name, gw.group_name) in (select name from both_named)
order by 1, 3, 2
