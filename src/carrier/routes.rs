//! The route table: which carrier a destination goes to.
//!
//! Routes with the same prefix and priority form a group. For a number, the groups whose prefix
//! it starts with are tried longest prefix first, then lowest priority first; the first group
//! with a usable carrier takes the message, and within a group carriers share traffic by weight
//! (smooth weighted round-robin, as nginx does it: exact shares, evenly interleaved, no
//! randomness to make tests flaky). Later groups are where traffic fails over to.

use std::sync::Mutex;

use crate::config::RouteConfig;

struct Group {
    prefix: String,
    priority: u32,
    /// (carrier index, weight)
    members: Vec<(usize, i64)>,
    /// Smooth weighted round-robin state, one per member.
    current: Mutex<Vec<i64>>,
}

impl Group {
    /// The member the round-robin picks among those `usable`, if any is.
    fn pick(&self, usable: &impl Fn(usize) -> bool) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0;
        let mut best: Option<usize> = None;
        for (slot, &(carrier, weight)) in self.members.iter().enumerate() {
            if !usable(carrier) {
                continue;
            }
            current[slot] += weight;
            total += weight;
            if best.is_none_or(|b| current[slot] > current[b]) {
                best = Some(slot);
            }
        }
        let slot = best?;
        current[slot] -= total;
        Some(self.members[slot].0)
    }

    /// The member with the most weight: whom traffic prefers when everything is up.
    fn preferred(&self) -> usize {
        let mut preferred = self.members[0];
        for &member in &self.members[1..] {
            if member.1 > preferred.1 {
                preferred = member;
            }
        }
        preferred.0
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub carrier: usize,
    /// The carrier of the best route, passed over because it was not usable: a failover.
    pub instead_of: Option<usize>,
}

pub struct RouteTable {
    /// Longest prefix first, then lowest priority.
    groups: Vec<Group>,
}

impl RouteTable {
    /// Builds the table; `index_of` maps a carrier name to its index (validated config names
    /// every route's carrier, so unknown names are skipped).
    pub fn new(routes: &[RouteConfig], index_of: impl Fn(&str) -> Option<usize>) -> Self {
        let mut groups: Vec<Group> = Vec::new();
        for route in routes {
            let Some(carrier) = index_of(&route.carrier) else {
                continue;
            };
            let member = (carrier, i64::from(route.weight));
            match groups
                .iter_mut()
                .find(|g| g.prefix == route.prefix && g.priority == route.priority)
            {
                Some(group) => group.members.push(member),
                None => groups.push(Group {
                    prefix: route.prefix.clone(),
                    priority: route.priority,
                    members: vec![member],
                    current: Mutex::new(Vec::new()),
                }),
            }
        }
        for group in &mut groups {
            group.current = Mutex::new(vec![0; group.members.len()]);
        }
        groups.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.priority.cmp(&b.priority))
        });
        Self { groups }
    }

    fn matching<'a>(&'a self, digits: &'a str) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups
            .iter()
            .filter(move |group| digits.starts_with(&group.prefix))
    }

    /// Whether any route serves `digits` (E.164 without the `+`).
    pub fn serves(&self, digits: &str) -> bool {
        self.matching(digits).next().is_some()
    }

    /// The carrier for `digits`: the first matching group with a `usable` carrier. When none is
    /// usable, `wait` picks from the best group anyway (the message waits for it); otherwise
    /// there is no pick.
    pub fn pick(&self, digits: &str, usable: impl Fn(usize) -> bool, wait: bool) -> Option<Pick> {
        let mut best: Option<&Group> = None;
        for group in self.matching(digits) {
            let first = *best.get_or_insert(group);
            if let Some(carrier) = group.pick(&usable) {
                let instead_of = (!std::ptr::eq(first, group)).then(|| first.preferred());
                return Some(Pick {
                    carrier,
                    instead_of,
                });
            }
        }
        let group = best.filter(|_| wait)?;
        group.pick(&|_| true).map(|carrier| Pick {
            carrier,
            instead_of: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, carrier: &str, priority: u32, weight: u32) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            carrier: carrier.into(),
            priority,
            weight,
        }
    }

    fn table(routes: &[RouteConfig]) -> RouteTable {
        RouteTable::new(routes, |name| {
            ["a", "b", "c"].iter().position(|known| *known == name)
        })
    }

    const A: usize = 0;
    const B: usize = 1;
    const C: usize = 2;

    #[test]
    fn the_longest_prefix_wins_whatever_the_order_in_the_file() {
        let table = table(&[
            route("", "a", 0, 1),
            route("44", "b", 5, 1),
            route("447", "c", 9, 1),
        ]);
        let pick = |digits| table.pick(digits, |_| true, true).map(|p| p.carrier);
        assert_eq!(pick("31612345678"), Some(A));
        assert_eq!(pick("441234567890"), Some(B));
        assert_eq!(pick("447700900123"), Some(C));
    }

    #[test]
    fn weights_share_traffic_exactly_and_interleaved() {
        let table = table(&[route("", "a", 0, 3), route("", "b", 0, 1)]);
        let picks: Vec<usize> = (0..8)
            .map(|_| table.pick("1", |_| true, true).expect("routed").carrier)
            .collect();
        assert_eq!(picks, [A, A, B, A, A, A, B, A]);
    }

    #[test]
    fn an_unusable_carrier_fails_over_to_its_group_then_to_the_next_priority_then_to_shorter_prefixes()
     {
        let table = table(&[
            route("44", "a", 0, 1),
            route("44", "b", 0, 1),
            route("44", "c", 1, 1),
            route("", "a", 0, 1),
        ]);
        let pick = |up: &[usize]| table.pick("4412", |c| up.contains(&c), false);
        let b_alone = pick(&[B, C]).expect("b is up");
        assert_eq!((b_alone.carrier, b_alone.instead_of), (B, None));
        assert_eq!(
            pick(&[C]),
            Some(Pick {
                carrier: C,
                instead_of: Some(A)
            })
        );
        let none_for_44 = table.pick("4412", |c| c == A, false).expect("a is up");
        assert_eq!(none_for_44.carrier, A);
        assert_eq!(pick(&[]), None, "nothing usable and no waiting");
        let waits = table.pick("4412", |_| false, true).expect("waits");
        assert!(matches!(waits.carrier, A | B), "{waits:?}");
    }

    #[test]
    fn numbers_no_route_serves_are_told_apart() {
        let table = table(&[route("44", "a", 0, 1)]);
        assert!(table.serves("4420"));
        assert!(!table.serves("3120"));
        assert_eq!(table.pick("3120", |_| true, true), None);
    }
}
