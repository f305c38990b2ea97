-- title: Devices without full-disk encryption
-- description: Active devices whose disk is not encrypted, with their owner from the inventory.
select d.display_name, d.os, d.serial_number, i.assigned_to, d.last_contact
from jumpcloud.devices d
left join inventory i on lower(i.serial) = lower(d.serial_number)
where not coalesce(d.fde_active, false)
order by d.display_name
