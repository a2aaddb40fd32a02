//! The Prometheus metric families a text names, and a Grafana dashboard's queries: the
//! chart's alerts and dashboard are checked, by the operator's and `ciclo serve`'s tests,
//! against the families each really exports.

use std::collections::BTreeSet;

/// Every metric name in `text` that starts with `prefix`, as the family it is a sample of (a
/// counter's `_total`, a histogram's `_bucket`, `_sum` or `_count` removed).
pub fn families(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len().max(1)..];
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        named.insert(family.to_string());
    }
    named
}

/// A Grafana dashboard's panels (rows left out) as (title, the queries of its targets).
pub fn dashboard_queries(dashboard: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let d: serde_json::Value = serde_json::from_str(dashboard).map_err(|e| e.to_string())?;
    let panels = d["panels"]
        .as_array()
        .ok_or("the dashboard has no panels")?;
    Ok(panels
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let queries = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(String::from))
                .collect();
            (p["title"].as_str().unwrap_or_default().to_string(), queries)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_named_by_their_family() {
        let expr = r#"sum(rate(ciclo_a_total[5m])) / histogram_quantile(0.99, ciclo_b_seconds_bucket) + ciclo_c{x="ciclo_"}"#;
        let named: Vec<String> = families(expr, "ciclo_").into_iter().collect();
        assert_eq!(named, ["ciclo_", "ciclo_a", "ciclo_b_seconds", "ciclo_c"]);
        assert_eq!(families(expr, "ciclo_b").len(), 1);
    }

    #[test]
    fn a_dashboards_queries_by_panel_rows_left_out() {
        let d = r#"{"panels": [{"type": "row", "title": "r"},
            {"type": "timeseries", "title": "p", "targets": [{"refId": "A", "expr": "up"}, {"refId": "B"}]}]}"#;
        assert_eq!(
            dashboard_queries(d).unwrap(),
            [("p".to_string(), vec!["up".to_string()])]
        );
        assert!(dashboard_queries("{}").is_err());
    }
}
