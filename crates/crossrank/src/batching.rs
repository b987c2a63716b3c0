//! How inputs are cut into forward passes: FlagEmbedding's order (longest
//! first, so each batch pads least) and sizes, with an optional token budget.
//! Public for crossrank's own crates (the server plans its passes with it),
//! not part of the API a user is promised. Also the padded layout of one
//! decoder pass ([`Batch`]), which the tokenizer fills and the layers read.

/// A right-padded batch on the host, row-major `rows × cols` (the
/// tokenizer pads it: `PairTokenizer::pad_to_multiple`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) ids: Vec<u32>,
    pub(crate) type_ids: Vec<u32>,
    pub(crate) attention_mask: Vec<u32>,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

/// Indices of `lens` sorted by length, longest first (stable), as
/// FlagEmbedding sorts inputs to pad less.
fn longest_first(lens: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    order
}

/// FlagEmbedding's batching — indices longest first, `batch_size` at a
/// time — with an optional cap on each batch's padded tokens: a batch also
/// stops growing before its padded size (pairs × its first, longest pair)
/// would pass `max_tokens`; a pair longer than the budget runs alone.
pub fn batches(lens: &[usize], batch_size: usize, max_tokens: Option<usize>) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in longest_first(lens) {
        match out.last_mut() {
            Some(b) if b.len() < batch_size && max_tokens.is_none_or(|m| (b.len() + 1) * lens[b[0]] <= m) => b.push(i),
            _ => out.push(vec![i]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_flagembedding_and_the_token_budget() {
        let lens = [10, 50, 30, 50, 5, 20];
        // FlagEmbedding: longest first (stable), batch_size at a time.
        assert_eq!(batches(&lens, 4, None), vec![vec![1, 3, 2, 5], vec![0, 4]]);
        // Budget 100 tokens: two 50s fill a batch; then 30×3 = 90 ≤ 100.
        assert_eq!(batches(&lens, 4, Some(100)), vec![vec![1, 3], vec![2, 5, 0], vec![4]]);
        // A pair over the budget runs alone.
        assert_eq!(batches(&lens, 8, Some(40)), vec![vec![1], vec![3], vec![2], vec![5, 0], vec![4]]);
        assert!(batches(&[], 4, Some(10)).is_empty());
    }
}
