//! The typed answers of the handlers beyond a plain `Json<T>`: a creation with its `Location`,
//! a change filed for approval instead of applied, and JSON or a CSV download.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{statement_csv::CsvDownload, views::Pending};

/// 201 Created with the new object and its `Location`.
#[derive(Debug)]
pub struct Created<T> {
    /// The path of the new object.
    pub location: String,
    /// The new object.
    pub body: T,
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::CREATED, Json(self.body)).into_response();
        if let Ok(value) = self.location.parse() {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

/// A change applied at once (`Done`, answered as `R` says), or filed as a change request for
/// a platform admin (202 with the [`Pending`] request).
#[derive(Debug)]
pub enum OrPending<R> {
    /// Applied.
    Done(R),
    /// Waiting for approval.
    Pending(Box<Pending>),
}

impl<R: IntoResponse> IntoResponse for OrPending<R> {
    fn into_response(self) -> Response {
        match self {
            Self::Done(done) => done.into_response(),
            Self::Pending(pending) => (StatusCode::ACCEPTED, Json(*pending)).into_response(),
        }
    }
}

/// JSON, or the same answer as a CSV file when the caller asked for `text/csv`.
#[derive(Debug)]
pub enum JsonOrCsv<T> {
    /// `application/json`.
    Json(T),
    /// `text/csv`, as a download.
    Csv(CsvDownload),
}

impl<T: Serialize> IntoResponse for JsonOrCsv<T> {
    fn into_response(self) -> Response {
        match self {
            Self::Json(body) => Json(body).into_response(),
            Self::Csv(file) => file.into_response(),
        }
    }
}

impl<R> OrPending<R> {
    /// The answer of a change filed as `pending`.
    pub fn pending(pending: Pending) -> Self {
        Self::Pending(Box::new(pending))
    }
}
