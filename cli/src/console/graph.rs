//! The state machine as a graph, laid out in layers for the console's SVG: states from the
//! ASL `States`, edges from `Next`, `Default`, `Choices[].Next` and `Catch[].Next`. Pure.
//!
//! Layout: back edges (found by a depth-first walk from `StartAt`) are set aside, each
//! state's layer is its longest path from `StartAt`, states keep their discovery order
//! within a layer, and layers are centred. Good enough for pipelines of a dozen states.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

pub const NODE_WIDTH: i64 = 150;
pub const NODE_HEIGHT: i64 = 40;
const GAP_X: i64 = 40;
const GAP_Y: i64 = 50;
const MARGIN: i64 = 20;

/// What kind of transition an edge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Next,
    Choice,
    Default,
    Catch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    /// The ASL `Type` (`Task`, `Choice`, `Pass`, `Fail`, ...).
    pub kind: String,
    pub layer: usize,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// Start (bottom centre of `from`) and end (top centre of `to`); a back edge runs
    /// from the side of `from` to the side of `to`.
    pub points: [(i64, i64); 2],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub start_at: String,
    pub width: i64,
    pub height: i64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("the definition is not JSON: {0}")]
    NotJson(String),
    #[error("the definition has no {0}")]
    Missing(&'static str),
    #[error("StartAt names {0}, which is not a state")]
    UnknownStart(String),
}

/// `(from, to, kind)` for every transition of every state, in definition order, keeping
/// only targets that exist.
fn transitions(states: &serde_json::Map<String, Value>) -> Vec<(String, String, EdgeKind)> {
    let mut out = Vec::new();
    for (name, state) in states {
        let mut push = |target: Option<&Value>, kind| {
            if let Some(t) = target.and_then(Value::as_str) {
                if states.contains_key(t) {
                    out.push((name.clone(), t.to_string(), kind));
                }
            }
        };
        push(state.get("Next"), EdgeKind::Next);
        for choice in state
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(choice.get("Next"), EdgeKind::Choice);
        }
        push(state.get("Default"), EdgeKind::Default);
        for catcher in state
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(catcher.get("Next"), EdgeKind::Catch);
        }
    }
    out
}

/// Lays out the definition (ASL JSON text).
pub fn layout(definition: &str) -> Result<Graph, GraphError> {
    let asl: Value =
        serde_json::from_str(definition).map_err(|e| GraphError::NotJson(e.to_string()))?;
    let start = asl
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or(GraphError::Missing("StartAt"))?
        .to_string();
    let states = asl
        .get("States")
        .and_then(Value::as_object)
        .ok_or(GraphError::Missing("States"))?;
    if !states.contains_key(&start) {
        return Err(GraphError::UnknownStart(start));
    }
    let edges = transitions(states);
    let mut out_edges: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (from, _, _)) in edges.iter().enumerate() {
        out_edges.entry(from.as_str()).or_default().push(i);
    }

    // Depth-first walk (iterative): discovery order, back edges, and a post-order whose
    // reverse is a topological order of the remaining (forward) edges.
    let mut order: Vec<String> = Vec::new();
    let mut post: Vec<String> = Vec::new();
    let mut on_stack: HashMap<String, bool> = HashMap::new();
    let mut back = vec![false; edges.len()];
    let mut stack: Vec<(String, usize)> = vec![(start.clone(), 0)];
    order.push(start.clone());
    on_stack.insert(start.clone(), true);
    while let Some((node, next)) = stack.pop() {
        let outs = out_edges.get(node.as_str()).cloned().unwrap_or_default();
        if let Some(&edge) = outs.get(next) {
            stack.push((node, next + 1));
            let target = &edges[edge].1;
            match on_stack.get(target) {
                Some(true) => back[edge] = true,
                Some(false) => {}
                None => {
                    order.push(target.clone());
                    on_stack.insert(target.clone(), true);
                    stack.push((target.clone(), 0));
                }
            }
        } else {
            on_stack.insert(node.clone(), false);
            post.push(node);
        }
    }
    // States not reachable from StartAt still get drawn, on their own, in the first layer.
    for name in states.keys() {
        if !on_stack.contains_key(name) {
            order.push(name.clone());
            post.push(name.clone());
        }
    }

    let mut layer: HashMap<&str, usize> = order.iter().map(|n| (n.as_str(), 0)).collect();
    for node in post.iter().rev() {
        let here = layer.get(node.as_str()).copied().unwrap_or(0);
        for &e in out_edges.get(node.as_str()).into_iter().flatten() {
            if !back[e] {
                let target = edges[e].1.as_str();
                if let Some(l) = layer.get_mut(target) {
                    *l = (*l).max(here + 1);
                }
            }
        }
    }

    let mut layers: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for name in &order {
        layers
            .entry(layer.get(name.as_str()).copied().unwrap_or(0))
            .or_default()
            .push(name);
    }
    let widest = layers.values().map(Vec::len).max().unwrap_or(1) as i64;
    let width = 2 * MARGIN + widest * NODE_WIDTH + (widest - 1).max(0) * GAP_X;
    let mut nodes = Vec::new();
    let mut position: HashMap<&str, (i64, i64)> = HashMap::new();
    for (l, names) in &layers {
        let n = names.len() as i64;
        let row_width = n * NODE_WIDTH + (n - 1) * GAP_X;
        let left = (width - row_width) / 2;
        for (i, name) in names.iter().enumerate() {
            let x = left + i as i64 * (NODE_WIDTH + GAP_X);
            let y = MARGIN + *l as i64 * (NODE_HEIGHT + GAP_Y);
            position.insert(name, (x, y));
            nodes.push(Node {
                name: name.to_string(),
                kind: states
                    .get(*name)
                    .and_then(|s| s.get("Type"))
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_string(),
                layer: *l,
                x,
                y,
                width: NODE_WIDTH,
                height: NODE_HEIGHT,
            });
        }
    }
    let layer_count = layers.keys().max().map_or(1, |l| *l as i64 + 1);
    let height = 2 * MARGIN + layer_count * NODE_HEIGHT + (layer_count - 1) * GAP_Y;
    let edges = edges
        .iter()
        .zip(back)
        .filter_map(|((from, to, kind), is_back)| {
            let (fx, fy) = *position.get(from.as_str())?;
            let (tx, ty) = *position.get(to.as_str())?;
            let points = if is_back {
                [
                    (fx + NODE_WIDTH, fy + NODE_HEIGHT / 2),
                    (tx + NODE_WIDTH, ty + NODE_HEIGHT / 2),
                ]
            } else {
                [
                    (fx + NODE_WIDTH / 2, fy + NODE_HEIGHT),
                    (tx + NODE_WIDTH / 2, ty),
                ]
            };
            Some(Edge {
                from: from.clone(),
                to: to.clone(),
                kind: *kind,
                points,
            })
        })
        .collect();
    Ok(Graph {
        start_at: start,
        width,
        height,
        nodes,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = include_str!("../../../state-machine/pipeline.asl.json");

    fn layers(g: &Graph) -> Vec<(&str, usize)> {
        g.nodes.iter().map(|n| (n.name.as_str(), n.layer)).collect()
    }

    #[test]
    fn layout_pipeline_layers_follow_the_longest_path() {
        let g = layout(PIPELINE).unwrap();
        assert_eq!(
            layers(&g),
            vec![
                ("Inspect", 0),
                ("IsSupported", 1),
                ("Transform", 2),
                ("Unsupported", 2),
                ("Load", 3),
                ("Quarantine", 4),
                ("QuarantineFailed", 5),
            ]
        );
        let kinds: Vec<_> = g
            .edges
            .iter()
            .filter(|e| e.to == "Quarantine")
            .map(|e| (e.from.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("Inspect", EdgeKind::Catch),
                ("Load", EdgeKind::Catch),
                ("Transform", EdgeKind::Catch),
                ("Unsupported", EdgeKind::Next),
            ]
        );
        assert!(g.edges.iter().any(|e| e.from == "IsSupported"
            && e.to == "Unsupported"
            && e.kind == EdgeKind::Default));
        assert_eq!(g.edges.len(), 9);
    }

    #[test]
    fn layout_nodes_fit_and_do_not_overlap() {
        let g = layout(PIPELINE).unwrap();
        for n in &g.nodes {
            assert!(n.x >= 0 && n.x + n.width <= g.width, "{n:?}");
            assert!(n.y >= 0 && n.y + n.height <= g.height, "{n:?}");
        }
        for (i, a) in g.nodes.iter().enumerate() {
            for b in &g.nodes[i + 1..] {
                let apart = a.x + a.width <= b.x
                    || b.x + b.width <= a.x
                    || a.y + a.height <= b.y
                    || b.y + b.height <= a.y;
                assert!(apart, "{} overlaps {}", a.name, b.name);
            }
        }
        // Forward edges point down.
        assert!(g.edges.iter().all(|e| e.points[0].1 < e.points[1].1));
    }

    #[test]
    fn layout_loop_and_unreachable_state_are_drawn() {
        let g = layout(
            r#"{"StartAt":"A","States":{
                "A":{"Type":"Pass","Next":"B"},
                "B":{"Type":"Choice","Choices":[{"Next":"A"}],"Default":"C"},
                "C":{"Type":"Succeed"},
                "Orphan":{"Type":"Pass","Next":"Nowhere"}}}"#,
        )
        .unwrap();
        assert_eq!(
            layers(&g),
            vec![("A", 0), ("Orphan", 0), ("B", 1), ("C", 2)]
        );
        let back = g
            .edges
            .iter()
            .find(|e| e.from == "B" && e.to == "A")
            .unwrap();
        assert_eq!(back.kind, EdgeKind::Choice);
        assert_eq!(g.edges.len(), 3, "the edge to a missing state is dropped");
    }

    #[test]
    fn layout_bad_definitions_are_errors_not_panics() {
        assert!(matches!(layout("{"), Err(GraphError::NotJson(_))));
        assert_eq!(layout("{}"), Err(GraphError::Missing("StartAt")));
        assert_eq!(
            layout(r#"{"StartAt":"A"}"#),
            Err(GraphError::Missing("States"))
        );
        assert_eq!(
            layout(r#"{"StartAt":"A","States":{}}"#),
            Err(GraphError::UnknownStart("A".into()))
        );
    }
}
