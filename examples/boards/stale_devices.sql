-- title: Devices not seen for 90 days
-- description: Lost, retired or broken machines that still hold accounts.
select d.display_name, d.os, d.serial_number, d.last_contact,
       date_part('day', now() - d.last_contact) as days_silent
from jumpcloud.devices d
where d.last_contact < now() - interval '90 days'
order by d.last_contact
