//! The frame every page shares: title, the scope it shows, the style sheet and the script
//! that keeps it live (both served by the view itself: no CDN, nothing inline, so the
//! Content-Security-Policy allows only this origin's files).

use crate::get::Scope;
use maud::{DOCTYPE, Markup, html};

/// A whole page: `title`, then `body` as the page's `<main>` (what a live update replaces).
pub fn page(title: &str, scope: &Scope, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ciclo" }
                link rel="stylesheet" href="/style.css";
                script src="/live.js" defer {}
            }
            body {
                header {
                    a.home href="/" { "ciclo" }
                    a href="/lineage" { "lineage" }
                    span.scope { (scope.words()) }
                    span #live title="live updates" {}
                }
                main { (body) }
            }
        }
    }
}

/// The style sheet (`/style.css`).
pub const STYLE: &str = include_str!("style.css");

/// The live updates (`/live.js`): on each change the server announces, the page's `<main>`
/// is fetched again and swapped in, so what the user looks at follows the cluster without
/// a reload (and without losing the scroll position).
pub const LIVE: &str = include_str!("live.js");
