//! Tensors grouped by module prefix (`model.layers.0.mlp.up_proj.weight` → model › layers › 0 ›
//! mlp › up_proj › weight) with parameter counts and bytes per group.

use crate::tensor::TensorInfo;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub params: u64,
    pub bytes: u64,
    pub children: Vec<Node>,
    /// Index into the checkpoint's tensor list, for a leaf.
    pub tensor: Option<usize>,
}

impl Node {
    pub fn tensors(&self) -> usize {
        if self.tensor.is_some() {
            1
        } else {
            self.children.iter().map(Node::tensors).sum()
        }
    }
}

/// Builds the tree; chains of single-child groups are joined (`model.embed_tokens`) so the
/// tree is no deeper than it needs to be.
pub fn build(tensors: &[TensorInfo]) -> Vec<Node> {
    let mut root = Node {
        name: String::new(),
        params: 0,
        bytes: 0,
        children: Vec::new(),
        tensor: None,
    };
    for (i, t) in tensors.iter().enumerate() {
        let mut node = &mut root;
        let parts: Vec<&str> = t.name.split('.').collect();
        for (depth, part) in parts.iter().enumerate() {
            node.params += t.numel();
            node.bytes += t.bytes;
            let leaf = depth + 1 == parts.len();
            let pos = node
                .children
                .iter()
                .position(|c| c.name == *part && c.tensor.is_none() && !leaf);
            let pos = pos.unwrap_or_else(|| {
                node.children.push(Node {
                    name: part.to_string(),
                    params: 0,
                    bytes: 0,
                    children: Vec::new(),
                    tensor: None,
                });
                node.children.len() - 1
            });
            node = &mut node.children[pos];
            if leaf {
                node.params += t.numel();
                node.bytes += t.bytes;
                node.tensor = Some(i);
            }
        }
    }
    let mut top = root.children;
    top.iter_mut().for_each(join_chains);
    sort_numeric(&mut top);
    top
}

fn join_chains(n: &mut Node) {
    while n.tensor.is_none() && n.children.len() == 1 && n.children[0].tensor.is_none() {
        let child = n.children.pop().unwrap();
        n.name = format!("{}.{}", n.name, child.name);
        n.children = child.children;
    }
    n.children.iter_mut().for_each(join_chains);
    sort_numeric(&mut n.children);
}

/// `layers.2` before `layers.10`.
fn sort_numeric(nodes: &mut [Node]) {
    nodes.sort_by(
        |a, b| match (a.name.parse::<u64>(), b.name.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.name.cmp(&b.name),
        },
    );
}

/// One visible row of the tree: depth, node path (indices from the top), node.
pub fn visible<'a>(
    nodes: &'a [Node],
    expanded: &dyn Fn(&[usize]) -> bool,
) -> Vec<(Vec<usize>, &'a Node)> {
    let mut out = Vec::new();
    fn walk<'a>(
        nodes: &'a [Node],
        path: &mut Vec<usize>,
        expanded: &dyn Fn(&[usize]) -> bool,
        out: &mut Vec<(Vec<usize>, &'a Node)>,
    ) {
        for (i, n) in nodes.iter().enumerate() {
            path.push(i);
            out.push((path.clone(), n));
            if !n.children.is_empty() && expanded(path) {
                walk(&n.children, path, expanded, out);
            }
            path.pop();
        }
    }
    walk(nodes, &mut Vec::new(), expanded, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn t(name: &str, n: u64) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![n],
            file: "f".into(),
            offset: 0,
            bytes: 4 * n,
        }
    }

    #[test]
    fn groups_by_prefix_with_totals() {
        let ts = [
            t("model.layers.10.w", 3),
            t("model.layers.2.w", 5),
            t("model.layers.2.b", 1),
            t("model.embed.weight", 7),
            t("lm_head.weight", 2),
        ];
        let tree = build(&ts);
        assert_eq!(tree[0].name, "lm_head");
        assert_eq!(tree[1].name, "model");
        assert_eq!(tree[1].params, 16);
        assert_eq!(tree[1].bytes, 64);
        let layers = &tree[1].children[1];
        assert_eq!(layers.name, "layers");
        assert_eq!(layers.children[0].name, "2");
        assert_eq!(layers.children[0].params, 6);
        assert_eq!(layers.children[1].name, "10");
        assert_eq!(tree[1].tensors(), 4);
        let rows = visible(&tree, &|p| p.len() < 2);
        assert_eq!(rows.len(), 2 + 3);
    }
}
