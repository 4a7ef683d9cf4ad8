//! Paging of the list endpoints: `?limit=N&after=KEY` in; one page out, with the key to ask for
//! the next one in the `x-next-after` header (as `GET /api/v1/audit` does) when there is more.
//! Keys are the items' names or ids; a page starts after the item whose key is `after`.

use axum::{
    http::HeaderValue,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::{audit::NEXT_AFTER_HEADER, problem::Problem};

/// Items in a page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 500;
/// The most items a page may hold.
pub const MAX_LIMIT: usize = 1000;

/// Which page of a list.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many items (1–1000; 500 if absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Start after the item with this key: the `x-next-after` header of the previous page.
    pub after: Option<String>,
}

/// One page and the key of its last item when more follow.
#[derive(Debug)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// What to pass as `after` for the next page, if there is one.
    pub next: Option<String>,
}

/// The page of `items` (in the list's order) that `limit` and `after` ask for, or 422 naming
/// the field: a limit out of range, or an `after` that names no item of the list.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    limit: Option<usize>,
    after: Option<&str>,
) -> Result<Page<T>, Problem> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::invalid_field(
            "limit",
            format!("must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let start = match after {
        None => 0,
        Some(after) => {
            items.iter().position(|i| key(i) == after).ok_or_else(|| {
                Problem::invalid_field(
                    "after",
                    format!("{after:?} is not in the list (any more); start again without it"),
                )
            })? + 1
        }
    };
    let more = items.len() > start + limit;
    let items: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next = more
        .then(|| items.last().map(|i| key(i).to_owned()))
        .flatten();
    Ok(Page { items, next })
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.items).into_response();
        if let Some(next) = self.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert(NEXT_AFTER_HEADER, next);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("b{i:02}")).collect()
    }

    #[test]
    fn pages_follow_one_another_without_gaps_or_repeats() {
        let all = names(7);
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = page(all.clone(), |s| s.as_str(), Some(3), after.as_deref()).unwrap();
            seen.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn a_last_page_that_is_exactly_full_names_no_next() {
        let page = page(names(3), |s| s.as_str(), Some(3), None).unwrap();
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_limit_out_of_range_or_an_unknown_after_is_refused_naming_the_field() {
        for limit in [0, MAX_LIMIT + 1] {
            let refused = page(names(3), |s| s.as_str(), Some(limit), None).unwrap_err();
            assert!(format!("{refused:?}").contains("limit"), "{refused:?}");
        }
        let refused = page(names(3), |s| s.as_str(), None, Some("zz")).unwrap_err();
        assert!(format!("{refused:?}").contains("after"), "{refused:?}");
        assert_eq!(
            page(names(3), |s| s.as_str(), None, None)
                .unwrap()
                .items
                .len(),
            3
        );
    }
}
