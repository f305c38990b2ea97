-- title: Devices with a failed policy
-- description: every device where a policy failed to apply, with the policy and its error
select d.display_name, d.os, p.name as policy, s.exit_status, s.ended_at, s.std_err
from jumpcloud.policy_statuses s
join jumpcloud.policies p on p.id = s.policy_id
join jumpcloud.devices d on d.id = s.device_id
where s.state = 'failed'
order by d.display_name, p.name
