//! The layout every page shares: navigation, styles (light and dark, from
//! `prefers-color-scheme`), the htmx script, and where an action's failure is shown.

use axum::response::Html;
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
:root{--bg:#f7f7f8;--fg:#1b1c1f;--muted:#666a73;--card:#fff;--line:#dfe1e6;--accent:#2456d6;
--ok:#1d7a3a;--bad:#c0262d;--warn:#a45d00;--run:#2456d6;--chip:#eef0f4}
@media (prefers-color-scheme: dark){:root{--bg:#15171b;--fg:#e6e7ea;--muted:#9aa0aa;--card:#1e2127;
--line:#30343c;--accent:#7ea2ff;--ok:#5cc983;--bad:#ff6b6f;--warn:#f0b35a;--run:#7ea2ff;--chip:#2a2e36}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
background:var(--bg);color:var(--fg)}a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;gap:18px;align-items:center;padding:10px 20px;background:var(--card);border-bottom:1px solid var(--line)}
header b{font-size:15px}header nav{display:flex;gap:14px}main{padding:16px 20px;max-width:1400px}
h1{font-size:20px;margin:4px 0 14px}h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:var(--chip);padding:10px;border-radius:6px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-word}
.st{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:var(--chip)}
.st-completed{color:var(--ok)}.st-failed{color:var(--bad)}.st-cancelled{color:var(--muted)}
.st-running,.st-retrying{color:var(--run)}.st-pending,.st-delayed,.st-paused{color:var(--warn)}
.muted{color:var(--muted)}.err{color:var(--bad)}
form.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:12px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted)}
input,select,button{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:5px;background:var(--card);color:var(--fg)}
button{cursor:pointer}button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
button.danger{color:var(--bad)}.actions{display:flex;gap:6px;flex-wrap:wrap;align-items:center}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:10px;margin-bottom:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px}
.card .k{font-size:12px;color:var(--muted)}.card .v{font-size:16px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;background:var(--card);
border:1px solid var(--line);border-radius:6px;padding:10px 14px}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
.pager{display:flex;gap:14px;margin:10px 0}#flash{min-height:1.5em;margin:0 0 8px}
.error-box{background:var(--card);border:1px solid var(--bad);border-radius:6px;padding:14px 18px}
"#;

/// Shows an action's failure (a 4xx or 5xx answer to htmx) above the page.
const SCRIPT: &str = r#"
document.addEventListener('htmx:responseError', function (e) {
  var text = e.detail.xhr.responseText, flash = document.getElementById('flash');
  try { text = JSON.parse(text).error || text; } catch (_) {}
  if (flash) { flash.textContent = 'Failed: ' + text; flash.className = 'err'; }
});
document.addEventListener('htmx:afterRequest', function (e) {
  var flash = document.getElementById('flash');
  if (flash && e.detail.successful && e.detail.requestConfig.verb === 'post') {
    flash.textContent = 'Done.'; flash.className = 'muted';
  }
});
"#;

/// A page: `root` is the relative path to the dashboard's root (`None` for an error page,
/// which shows no navigation).
pub(crate) fn layout(root: Option<&str>, title: &str, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · taskrunner" }
                style { (PreEscaped(STYLE)) }
                @if let Some(root) = root {
                    script src={ (root) "assets/htmx.min.js" } {}
                    script { (PreEscaped(SCRIPT)) }
                }
            }
            body {
                header {
                    b { "taskrunner" }
                    @if let Some(root) = root {
                        nav {
                            a href=(root) { "Overview" }
                            a href={ (root) "runs" } { "Runs" }
                            a href={ (root) "schedules" } { "Schedules" }
                            a href={ (root) "tasks" } { "Tasks" }
                        }
                    }
                }
                main {
                    div #flash role="status" {}
                    (body)
                }
            }
        }
    };
    Html(page.into_string())
}

/// The live part of a page: polled every 2 s while the tab is visible (never two polls at
/// once), and at once after an action; `url` is the page's own relative URL.
pub(crate) fn live(url: &str, body: Markup) -> Markup {
    html! {
        div #live hx-get=(url) hx-trigger="every 2s [!document.hidden], refresh from:body"
            hx-select="#live" hx-swap="outerHTML" hx-sync="this:drop" {
            (body)
        }
    }
}

/// A status as a coloured chip.
pub(crate) fn status(name: &str) -> Markup {
    html! { span class={ "st st-" (name) } { (name) } }
}

/// An optional value, or a dash.
pub(crate) fn opt(value: Option<impl std::fmt::Display>) -> Markup {
    match value {
        Some(v) => html! { (v.to_string()) },
        None => html! { span.muted { "–" } },
    }
}

/// Milliseconds as `850 ms`, `12.3 s` or `4.2 min`.
pub(crate) fn millis(ms: Option<u64>) -> Markup {
    match ms {
        None => html! { span.muted { "–" } },
        Some(ms) if ms < 1000 => html! { (ms) " ms" },
        Some(ms) if ms < 120_000 => html! { (format!("{:.1}", ms as f64 / 1000.0)) " s" },
        Some(ms) => html! { (format!("{:.1}", ms as f64 / 60_000.0)) " min" },
    }
}

/// A count that stops at `cap`: `10000+` there.
pub(crate) fn capped(n: u64, cap: u64) -> String {
    if n >= cap {
        format!("{cap}+")
    } else {
        n.to_string()
    }
}

/// An action button: `POST`s to `url` through htmx, asking first if `confirm` is given.
pub(crate) fn action(url: &str, label: &str, class: &str, confirm: Option<&str>) -> Markup {
    html! {
        button class=(class) hx-post=(url) hx-swap="none" hx-confirm=[confirm] { (label) }
    }
}
