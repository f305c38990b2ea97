-- title: Empty user groups
-- description: Groups nobody belongs to: clutter, or a binding that grants nothing.
select g.name, g.description
from jumpcloud.user_groups g
left join jumpcloud.user_group_members m on m.group_id = g.id
where m.user_id is null
order by g.name
