//! Start order from `dependencies` and `after_dependencies`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a plugin cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// The plugin is part of a dependency cycle.
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The cycle, first domain repeated at the end (`a -> b -> a`).
        cycle: Vec<String>,
    },
    /// The plugin depends on plugins that are neither loaded nor being loaded.
    #[error("plugin {plugin} depends on {} which {}", missing.join(", "), if missing.len() == 1 { "is not available" } else { "are not available" })]
    Missing {
        /// The plugin.
        plugin: String,
        /// What is missing.
        missing: Vec<String>,
    },
    /// The plugin depends (directly or not) on a plugin that cannot start.
    #[error("plugin {plugin} cannot start because its dependency {dependency} cannot")]
    DependencyUnavailable {
        /// The plugin.
        plugin: String,
        /// The dependency that cannot start.
        dependency: String,
    },
}

/// One plugin to order: its domain, hard dependencies and optional after-dependencies.
#[derive(Debug, Clone, Copy)]
pub struct OrderItem<'a> {
    /// The plugin's domain.
    pub domain: &'a str,
    /// Must be running before it starts.
    pub dependencies: &'a [String],
    /// Start before it when present.
    pub after_dependencies: &'a [String],
}

/// The result of ordering: plugins that can start, in order, and the others with the reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartOrder {
    /// Domains in an order where every plugin comes after what it depends on.
    pub order: Vec<String>,
    /// Plugins that cannot start, and why.
    pub refused: BTreeMap<String, OrderError>,
}

/// Orders `items`; `available` are domains already running (they satisfy dependencies).
///
/// Hard dependencies must be in `items` or `available`; after-dependencies only order the
/// plugins when present. Plugins in a cycle, with a missing dependency, or depending on such a
/// plugin are refused with the reason; the rest are ordered (ties broken by name, so the order is
/// deterministic).
#[must_use]
pub fn start_order(items: &[OrderItem<'_>], available: &BTreeSet<String>) -> StartOrder {
    let by_domain: HashMap<&str, &OrderItem<'_>> = items.iter().map(|i| (i.domain, i)).collect();
    let mut refused: BTreeMap<String, OrderError> = BTreeMap::new();

    // Edges: domain -> what must start first (only among the items).
    let mut before: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for item in items {
        let mut firsts = BTreeSet::new();
        let mut missing = Vec::new();
        for dep in item.dependencies {
            if by_domain.contains_key(dep.as_str()) {
                firsts.insert(dep.as_str());
            } else if !available.contains(dep) {
                missing.push(dep.clone());
            }
        }
        for dep in item.after_dependencies {
            if by_domain.contains_key(dep.as_str()) {
                firsts.insert(dep.as_str());
            }
        }
        if !missing.is_empty() {
            refused.insert(
                item.domain.to_owned(),
                OrderError::Missing {
                    plugin: item.domain.to_owned(),
                    missing,
                },
            );
        }
        before.insert(item.domain, firsts);
    }

    for cycle in find_cycles(&before) {
        for member in &cycle[..cycle.len() - 1] {
            refused
                .entry(member.clone())
                .or_insert_with(|| OrderError::Cycle {
                    cycle: cycle.clone(),
                });
        }
    }

    // Kahn's algorithm over the rest; a plugin whose hard dependency is refused is refused.
    let mut order = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    loop {
        let ready: Vec<&str> = before
            .iter()
            .filter(|(d, firsts)| {
                !done.contains(*d)
                    && !refused.contains_key(**d)
                    && firsts
                        .iter()
                        .all(|f| done.contains(f) || refused.contains_key(*f))
            })
            .map(|(d, _)| *d)
            .collect();
        if ready.is_empty() {
            break;
        }
        for domain in ready {
            done.insert(domain);
            let item = by_domain[domain];
            if let Some(bad) = item
                .dependencies
                .iter()
                .find(|d| refused.contains_key(d.as_str()))
            {
                refused.insert(
                    domain.to_owned(),
                    OrderError::DependencyUnavailable {
                        plugin: domain.to_owned(),
                        dependency: bad.clone(),
                    },
                );
            } else {
                order.push(domain.to_owned());
            }
        }
    }
    // Whatever is left waits on a cycle through soft edges only or on refused plugins.
    for item in items {
        if !done.contains(item.domain) && !refused.contains_key(item.domain) {
            let dependency = before[item.domain]
                .iter()
                .find(|f| !done.contains(*f))
                .map_or_else(String::new, |f| (*f).to_owned());
            refused.insert(
                item.domain.to_owned(),
                OrderError::DependencyUnavailable {
                    plugin: item.domain.to_owned(),
                    dependency,
                },
            );
        }
    }
    StartOrder { order, refused }
}

/// Every elementary cycle found by depth-first search (one per strongly connected region
/// reached), each as a path whose last element repeats the first.
fn find_cycles(edges: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnStack,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        marks.insert(node, Mark::OnStack);
        stack.push(node);
        for &next in edges.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::Unseen) {
                Mark::Unseen => visit(next, edges, marks, stack, cycles),
                Mark::OnStack => {
                    let start = stack.iter().position(|n| *n == next).expect("on the stack");
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|s| (*s).to_owned()).collect();
                    cycle.push(next.to_owned());
                    cycles.push(cycle);
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut cycles = Vec::new();
    for &node in edges.keys() {
        if marks.get(node).copied().unwrap_or(Mark::Unseen) == Mark::Unseen {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn run(spec: &[(&str, &[&str], &[&str])], available: &[&str]) -> StartOrder {
        let owned: Vec<(String, Vec<String>, Vec<String>)> = spec
            .iter()
            .map(|(d, h, s)| ((*d).to_owned(), v(h), v(s)))
            .collect();
        let items: Vec<OrderItem<'_>> = owned
            .iter()
            .map(|(d, h, s)| OrderItem {
                domain: d,
                dependencies: h,
                after_dependencies: s,
            })
            .collect();
        start_order(&items, &available.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn dependencies_start_first() {
        let o = run(
            &[
                ("c", &["b"], &[]),
                ("b", &["a"], &[]),
                ("a", &[], &[]),
                ("d", &[], &["c"]),
            ],
            &[],
        );
        assert_eq!(o.order, v(&["a", "b", "c", "d"]));
        assert!(o.refused.is_empty());
    }

    #[test]
    fn after_dependencies_order_only_when_present() {
        let o = run(&[("b", &[], &["a", "ghost"]), ("a", &[], &[])], &[]);
        assert_eq!(o.order, v(&["a", "b"]));
    }

    #[test]
    fn available_plugins_satisfy_dependencies() {
        let o = run(&[("b", &["a"], &[])], &["a"]);
        assert_eq!(o.order, v(&["b"]));
    }

    #[test]
    fn a_cycle_is_named_and_its_dependents_refused() {
        let o = run(
            &[
                ("a", &["b"], &[]),
                ("b", &["c"], &[]),
                ("c", &["a"], &[]),
                ("d", &["a"], &[]),
                ("e", &[], &[]),
            ],
            &[],
        );
        assert_eq!(o.order, v(&["e"]));
        assert_eq!(
            o.refused["a"],
            OrderError::Cycle {
                cycle: v(&["a", "b", "c", "a"])
            }
        );
        assert!(matches!(&o.refused["b"], OrderError::Cycle { .. }));
        assert_eq!(
            o.refused["d"],
            OrderError::DependencyUnavailable {
                plugin: "d".into(),
                dependency: "a".into()
            }
        );
        assert_eq!(
            o.refused["a"].to_string(),
            "dependency cycle: a -> b -> c -> a"
        );
    }

    #[test]
    fn missing_dependency_is_named_and_propagates() {
        let o = run(
            &[
                ("a", &["zigbee", "mqtt"], &[]),
                ("b", &["a"], &[]),
                ("c", &[], &[]),
            ],
            &[],
        );
        assert_eq!(o.order, v(&["c"]));
        assert_eq!(
            o.refused["a"],
            OrderError::Missing {
                plugin: "a".into(),
                missing: v(&["zigbee", "mqtt"])
            }
        );
        assert_eq!(
            o.refused["a"].to_string(),
            "plugin a depends on zigbee, mqtt which are not available"
        );
        assert!(
            matches!(&o.refused["b"], OrderError::DependencyUnavailable { dependency, .. } if dependency == "a")
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let o = run(&[("a", &["a"], &[])], &[]);
        assert_eq!(
            o.refused["a"],
            OrderError::Cycle {
                cycle: v(&["a", "a"])
            }
        );
    }
}
