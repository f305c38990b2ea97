-- title: Failed logins in the last 7 days
-- description: per person, failed sign-ins to the portals, SSO apps, RADIUS and devices this week, most first
select coalesce(username, initiated_by_email) as who,
       count(*) as failures,
       count(distinct client_ip) as addresses,
       max(timestamp) as last_failure
from jumpcloud.directory_events
where not success
  and event_type in ('user_login_attempt', 'admin_login_attempt', 'sso_auth', 'radius_auth', 'login_attempt')
  and timestamp >= now() - interval '7 days'
group by 1
order by failures desc, who
