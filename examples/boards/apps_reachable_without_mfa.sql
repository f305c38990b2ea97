-- title: Applications reachable by users without MFA
-- description: Per application, the active people who can reach it (directly or through a group) without a second factor.
-- Listing every (application, person) pair and counting the distinct ones builds about a million
-- pairs at 100,000 users. Counting instead: add up the no-MFA members of each group bound to the
-- application, take away the people already counted under an earlier group of the same
-- application, and add the people assigned directly who no group reaches.
with no_mfa as (
  select id from jumpcloud.users
  where state = 'ACTIVATED'
    and not coalesce(suspended, false)
    and not coalesce(mfa_configured, false)
),
no_mfa_members as (
  select m.group_id, m.user_id
  from jumpcloud.user_group_members m
  join no_mfa n on n.id = m.user_id
),
through_groups as (
  select ag.application_id, sum(g.members) as people
  from jumpcloud.application_user_groups ag
  join (select group_id, count(*) as members from no_mfa_members group by group_id) g on g.group_id = ag.group_id
  group by ag.application_id
),
-- Two groups bound to the same application.
group_pairs as (
  select x.application_id, x.group_id as earlier_group, y.group_id as later_group
  from jumpcloud.application_user_groups x
  join jumpcloud.application_user_groups y on y.application_id = x.application_id and x.group_id < y.group_id
),
-- (person, later group) pairs of people also in an earlier group: counted twice above.
counted_twice as (
  select p.application_id, count(distinct (later.user_id, later.group_id)) as people
  from no_mfa_members earlier
  join no_mfa_members later on later.user_id = earlier.user_id and earlier.group_id < later.group_id
  join group_pairs p on p.earlier_group = earlier.group_id and p.later_group = later.group_id
  group by p.application_id
),
direct as (
  select au.application_id, au.user_id
  from jumpcloud.application_users au
  join no_mfa n on n.id = au.user_id
),
direct_only as (
  select application_id, count(*) as people
  from (
    select application_id, user_id from direct
    except
    select d.application_id, d.user_id
    from direct d
    join jumpcloud.user_group_members m on m.user_id = d.user_id
    join jumpcloud.application_user_groups ag on ag.group_id = m.group_id and ag.application_id = d.application_id
  )
  group by application_id
),
per_application as (
  select a.display_label,
         coalesce(t.people, 0) - coalesce(c.people, 0) + coalesce(d.people, 0) as users_without_mfa
  from jumpcloud.applications a
  left join through_groups t on t.application_id = a.id
  left join counted_twice c on c.application_id = a.id
  left join direct_only d on d.application_id = a.id
)
select display_label as application, users_without_mfa
from per_application
where users_without_mfa > 0
order by users_without_mfa desc, application
