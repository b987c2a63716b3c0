//! The one ranking rule the CLI, the server and the npm package use, and
//! the sigmoid `normalize` applies.

/// One reranked document.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// Position of the document in the input.
    pub index: usize,
    /// Its score (raw logit, or sigmoid with `normalize`).
    pub score: f32,
}

/// Scores best first (ties and NaNs keep input order; NaNs last), at most
/// `top_k`: the one ranking rule of the CLI, the server and the npm package.
pub fn rank(scores: &[f32], top_k: Option<usize>) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = scores.iter().enumerate().map(|(index, &score)| Ranked { index, score }).collect();
    ranked.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (false, false) => b.score.total_cmp(&a.score),
        (x, y) => x.cmp(&y),
    });
    ranked.truncate(top_k.unwrap_or(ranked.len()));
    ranked
}

/// The logistic function `normalize` applies (FlagReranker's sigmoid).
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_sorts_descending_stably_and_truncates() {
        let r = rank(&[0.5, 2.0, f32::NAN, 2.0, -1.0], Some(3));
        assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 3, 0]);
        let r = rank(&[0.5, f32::NAN, 1.0], None);
        assert_eq!(r.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 0, 1]);
    }

    #[test]
    fn sigmoid_matches_reference_values() {
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((sigmoid(2.0) - 0.880_797_1).abs() < 1e-6);
        assert!((sigmoid(-3.0) - 0.047_425_87).abs() < 1e-7);
    }
}
