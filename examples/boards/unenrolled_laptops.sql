-- title: Laptops in the inventory that JumpCloud does not manage
-- description: Bought and handed out, but never enrolled: no policies, no disk encryption checks.
select i.serial, i.hostname, i.model, i.assigned_to
from inventory i
left join jumpcloud.devices d on lower(d.serial_number) = lower(i.serial)
where d.id is null
order by i.serial
