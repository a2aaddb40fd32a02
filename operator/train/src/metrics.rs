//! Validation metrics, computed here rather than taken from linfa so every algorithm gets the
//! same definitions (those of scikit-learn, whose numbers users compare against):
//!
//! - `accuracy`: the share of rows whose class is predicted.
//! - `precision`, `recall`, `f1`: two classes: of the positive class, the greater label;
//!   more: the unweighted mean over the classes that occur in the truth or the predictions
//!   (macro), F1 averaged per class. A ratio with nothing to divide by counts as 0.
//! - `roc_auc`: two classes: the probability that a positive row scores above a negative one
//!   (ties half), from the predicted probabilities; more: the macro mean of one-vs-rest AUCs
//!   over the classes with both positive and negative rows. Left out when undefined.
//! - `log_loss`: the mean of `-ln p(true class)`, with p clipped to [1e-15, 1 - 1e-15].
//! - `rmse`, `mae`, `r2` (1 - residual / total sum of squares; left out for a constant truth).
//!
//! Class indices are the model's (classes sorted); a validation class the training rows did not
//! have gets an index past them: it is never predicted and has probability 0.

use std::collections::BTreeMap;

/// Clipping of probabilities in the log loss, as scikit-learn's: a confident mistake costs
/// about 34.5, not infinity.
const EPSILON: f64 = 1e-15;

/// The classification metrics of `predicted` against `truth`, with the model's class
/// `probabilities` per row (`n_classes` each).
pub(crate) fn classification(
    truth: &[usize],
    predicted: &[usize],
    probabilities: &[Vec<f64>],
    n_classes: usize,
) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if truth.is_empty() {
        return m;
    }
    m.insert("accuracy".into(), accuracy(truth, predicted));
    let (precision, recall, f1) = if n_classes == 2 {
        binary_scores(truth, predicted, 1)
    } else {
        macro_scores(truth, predicted)
    };
    m.insert("precision".into(), precision);
    m.insert("recall".into(), recall);
    m.insert("f1".into(), f1);
    let auc = if n_classes == 2 {
        let scores: Vec<f64> = probabilities.iter().map(|p| p[1]).collect();
        roc_auc(&positives(truth, 1), &scores)
    } else {
        macro_roc_auc(truth, probabilities, n_classes)
    };
    if let Some(auc) = auc {
        m.insert("roc_auc".into(), auc);
    }
    m.insert("log_loss".into(), log_loss(truth, probabilities));
    m
}

/// The regression metrics of `predicted` against `truth`.
pub(crate) fn regression(truth: &[f64], predicted: &[f64]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if truth.is_empty() {
        return m;
    }
    let n = truth.len() as f64;
    let residuals = truth.iter().zip(predicted).map(|(t, p)| t - p);
    let squares: f64 = residuals.clone().map(|r| r * r).sum();
    m.insert("rmse".into(), (squares / n).sqrt());
    m.insert("mae".into(), residuals.map(f64::abs).sum::<f64>() / n);
    let mean = truth.iter().sum::<f64>() / n;
    let total: f64 = truth.iter().map(|t| (t - mean) * (t - mean)).sum();
    if total > 0.0 {
        m.insert("r2".into(), 1.0 - squares / total);
    }
    m
}

fn accuracy(truth: &[usize], predicted: &[usize]) -> f64 {
    let right = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    right as f64 / truth.len() as f64
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn f1_of(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Precision, recall and F1 of class `positive`.
fn binary_scores(truth: &[usize], predicted: &[usize], positive: usize) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (t, p) in truth.iter().zip(predicted) {
        match (*t == positive, *p == positive) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
    (precision, recall, f1_of(precision, recall))
}

/// Macro precision, recall and F1 over the classes in `truth` or `predicted`.
fn macro_scores(truth: &[usize], predicted: &[usize]) -> (f64, f64, f64) {
    let mut labels: Vec<usize> = truth.iter().chain(predicted).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for &k in &labels {
        let (p, r, f) = binary_scores(truth, predicted, k);
        precision += p;
        recall += r;
        f1 += f;
    }
    let n = labels.len() as f64;
    (precision / n, recall / n, f1 / n)
}

fn positives(truth: &[usize], class: usize) -> Vec<bool> {
    truth.iter().map(|t| *t == class).collect()
}

/// The ROC AUC of `scores` for the rows marked positive, by ranks (Mann–Whitney U) with tied
/// scores sharing their mean rank; None without both positive and negative rows.
fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|r| positive[**r]).count() as f64;
        i = j + 1;
    }
    let (n_pos, n_neg) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

fn macro_roc_auc(truth: &[usize], probabilities: &[Vec<f64>], n_classes: usize) -> Option<f64> {
    let aucs: Vec<f64> = (0..n_classes)
        .filter_map(|k| {
            let scores: Vec<f64> = probabilities.iter().map(|p| p[k]).collect();
            roc_auc(&positives(truth, k), &scores)
        })
        .collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

fn log_loss(truth: &[usize], probabilities: &[Vec<f64>]) -> f64 {
    let total: f64 = truth
        .iter()
        .zip(probabilities)
        .map(|(t, p)| {
            let p = p.get(*t).copied().unwrap_or(0.0);
            -p.clamp(EPSILON, 1.0 - EPSILON).ln()
        })
        .sum();
    total / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn binary_metrics_match_hand_computed_values() {
        // truth:     1 1 1 0 0 0 0 1
        // predicted: 1 1 0 0 0 1 0 1      TP 3, FN 1, FP 1, TN 3
        let truth = [1, 1, 1, 0, 0, 0, 0, 1];
        let predicted = [1, 1, 0, 0, 0, 1, 0, 1];
        let p1 = [0.9, 0.8, 0.4, 0.1, 0.3, 0.6, 0.2, 0.7];
        let probabilities: Vec<Vec<f64>> = p1.iter().map(|p| vec![1.0 - p, *p]).collect();
        let m = classification(&truth, &predicted, &probabilities, 2);
        assert!(close(m["accuracy"], 6.0 / 8.0));
        assert!(close(m["precision"], 3.0 / 4.0));
        assert!(close(m["recall"], 3.0 / 4.0));
        assert!(close(m["f1"], 0.75));
        // Positive scores .9 .8 .4 .7 against negative .1 .3 .6 .2: of 16 pairs, only .4 < .6
        // is ordered wrongly.
        assert!(close(m["roc_auc"], 15.0 / 16.0));
        let expected = -(0.9f64.ln()
            + 0.8f64.ln()
            + 0.4f64.ln()
            + 0.9f64.ln()
            + 0.7f64.ln()
            + 0.4f64.ln()
            + 0.8f64.ln()
            + 0.7f64.ln())
            / 8.0;
        assert!(
            close(m["log_loss"], expected),
            "{} {expected}",
            m["log_loss"]
        );
    }

    #[test]
    fn tied_scores_count_half_in_the_auc() {
        // One positive and one negative with the same score: AUC 0.5.
        assert_eq!(roc_auc(&[true, false], &[0.5, 0.5]), Some(0.5));
        // pos .8, .5; neg .5, .2: pairs (.8,.5) 1, (.8,.2) 1, (.5,.5) 0.5, (.5,.2) 1 → 3.5/4.
        assert_eq!(
            roc_auc(&[true, true, false, false], &[0.8, 0.5, 0.5, 0.2]),
            Some(0.875)
        );
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
    }

    #[test]
    fn multiclass_metrics_are_macro_averages() {
        // truth 0 0 1 1 2 2, predicted 0 1 1 1 2 0
        // class 0: TP1 FP1 FN1 → P .5 R .5 F1 .5
        // class 1: TP2 FP1 FN0 → P 2/3 R 1 F1 .8
        // class 2: TP1 FP0 FN1 → P 1 R .5 F1 2/3
        let truth = [0, 0, 1, 1, 2, 2];
        let predicted = [0, 1, 1, 1, 2, 0];
        let probabilities: Vec<Vec<f64>> = predicted
            .iter()
            .map(|p| {
                let mut v = vec![0.25; 3];
                v[*p] = 0.5;
                v
            })
            .collect();
        let m = classification(&truth, &predicted, &probabilities, 3);
        assert!(close(m["accuracy"], 4.0 / 6.0));
        assert!(close(m["precision"], (0.5 + 2.0 / 3.0 + 1.0) / 3.0));
        assert!(close(m["recall"], (0.5 + 1.0 + 0.5) / 3.0));
        assert!(close(m["f1"], (0.5 + 0.8 + 2.0 / 3.0) / 3.0));
        assert!(close(
            m["log_loss"],
            -(4.0 * 0.5f64.ln() + 2.0 * 0.25f64.ln()) / 6.0
        ));
        // One-vs-rest, class 0: positives score .5 .25, negatives .25 .25 .25 .5 →
        // pairs: .5 vs (.25×3: 3, .5: .5) = 3.5; .25 vs (.25×3: 1.5, .5: 0) = 1.5 → 5/8.
        // class 1: positives .5 .5, negatives .25 .5 .25 .25 → each: 3 + .5 → 7/8.
        // class 2: positives .5 .25, negatives all .25 → .5: 4; .25: 4 ties = 2 → 6/8.
        assert!(close(
            m["roc_auc"],
            (5.0 / 8.0 + 7.0 / 8.0 + 6.0 / 8.0) / 3.0
        ));
    }

    #[test]
    fn a_class_unseen_in_training_costs_the_most() {
        let m = classification(&[2], &[0], &[vec![0.5, 0.5]], 2);
        assert_eq!(m["accuracy"], 0.0);
        assert!(close(m["log_loss"], -(EPSILON.ln())));
        assert!(!m.contains_key("roc_auc"), "no positive row");
    }

    #[test]
    fn regression_metrics_match_hand_computed_values() {
        // Residuals 1, -1, 0, 2: squares 6, absolutes 4.
        let truth = [1.0, 2.0, 3.0, 4.0];
        let predicted = [0.0, 3.0, 3.0, 2.0];
        let m = regression(&truth, &predicted);
        assert!(close(m["rmse"], (6.0f64 / 4.0).sqrt()));
        assert!(close(m["mae"], 4.0 / 4.0));
        // Total: 2.25 + .25 + .25 + 2.25 = 5; residual 6 → r2 = 1 - 6/5.
        assert!(close(m["r2"], 1.0 - 6.0 / 5.0));
        assert!(!regression(&[3.0, 3.0], &[3.0, 3.0]).contains_key("r2"));
    }
}
