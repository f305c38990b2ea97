-- title: HR leavers still active in JumpCloud
-- description: People HR marked as terminated whose JumpCloud account is not suspended.
select h.employee_id, u.email, u.state, h.termination_date
from hr h
join jumpcloud.users u on lower(u.email) = lower(h.email)
where h.status = 'terminated'
  and not coalesce(u.suspended, false)
order by h.termination_date, u.email
