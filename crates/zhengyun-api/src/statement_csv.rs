//! A month's statement as CSV for spreadsheets (Excel and WPS on a Chinese Windows desktop).
//!
//! - UTF-8 with a byte order mark by default; `charset=gb18030` gives GB18030 (what older
//!   finance software and Excel's own "CSV" save produce), without a mark.
//! - English column names by default; `headers=zh` gives Chinese ones, same order.
//! - Months and rate-card dates are written `="2026-11"`, which spreadsheets keep as text
//!   instead of turning into a date (other CSV readers see the formula text).
//! - One row per statement line, then one per adjustment (`kind` = `adjustment (reserved)`…,
//!   signed `unit_seconds`), then one per settled amount of borrowed capacity (`kind` = `burst`
//!   for a borrower's charge, `lent` for a lender's credit, negative, `platform share` for what
//!   the platform keeps; `unit_seconds` burst or idle reserved), then one `total` row per bureau
//!   whose amount is what it owes (its lines, its settled borrowing and its adjustments), then
//!   one `platform total` row. `status` is `provisional` or
//!   `closed` on every row, so a printout cannot be mistaken for a final bill.

use std::collections::BTreeMap;

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use zhengyun_metering::settlement::Role;
use zhengyun_metering::{AdjustmentLine, Payable, Statement, StatementStatus};

/// The character set of the CSV.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 with a byte order mark.
    #[default]
    Utf8,
    /// GB18030, no byte order mark.
    Gb18030,
}

impl Charset {
    /// Reads `utf-8` or `gb18030` (any case; `utf8`, `gbk` and `gb2312` are accepted as their
    /// supersets).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "gb18030" | "gbk" | "gb2312" => Some(Self::Gb18030),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Utf8 => "text/csv; charset=utf-8",
            Self::Gb18030 => "text/csv; charset=gb18030",
        }
    }
}

/// How the CSV is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Character set.
    pub charset: Charset,
    /// Chinese column names instead of English ones.
    pub chinese_headers: bool,
}

/// Column names, English and Chinese.
const COLUMNS: [(&str, &str); 18] = [
    ("month", "月份"),
    ("bureau", "单位代码"),
    ("bureau_name", "单位名称"),
    ("environment", "环境"),
    ("resource", "资源"),
    ("kind", "类别"),
    ("tier", "等级"),
    ("rate_card", "价目表生效日"),
    ("quantity", "数量"),
    ("unit", "计量单位"),
    ("unit_price", "单价"),
    ("amount", "金额"),
    ("currency", "币种"),
    ("reference", "引用"),
    ("unit_seconds", "单位秒数"),
    ("period_start", "计费开始"),
    ("period_end", "计费结束"),
    ("status", "状态"),
];

/// A cell: plain text (quoted when needed, formulas defused), or a value a spreadsheet must
/// keep as text.
enum Cell {
    Plain(String),
    Text(String),
}

impl Cell {
    fn render(&self) -> String {
        match self {
            Self::Plain(text) => csv_cell(text),
            Self::Text(text) => quote(&format!("=\"{text}\"")),
        }
    }
}

fn plain(text: impl Into<String>) -> Cell {
    Cell::Plain(text.into())
}

/// The statement, its `adjustments` and what each bureau owes as a CSV download.
pub fn statement_csv(
    statement: &Statement,
    status: &StatementStatus,
    adjustments: &[AdjustmentLine],
    payable: &(BTreeMap<String, Payable>, Payable),
    names: &BTreeMap<String, String>,
    options: CsvOptions,
) -> CsvDownload {
    let month = statement.month.to_string();
    let status = status.name();
    let name = |bureau: &str| names.get(bureau).cloned().unwrap_or_default();
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    for line in &statement.lines {
        let m = &line.key.meter;
        rows.push(vec![
            Cell::Text(month.clone()),
            plain(m.bureau()),
            plain(name(m.bureau())),
            plain(m.environment()),
            plain(m.resource().as_str()),
            plain(m.kind().as_str()),
            plain(m.tier().as_str()),
            Cell::Text(line.key.rate_card.to_string()),
            plain(line.quantity.to_string()),
            plain(line.unit.clone()),
            plain(line.unit_price.to_string()),
            plain(line.amount.to_string()),
            plain(statement.currency.clone()),
            plain(line.key.reference(statement.month)),
            plain(line.unit_seconds.to_string()),
            plain(line.period.start().to_string()),
            plain(line.period.end().to_string()),
            plain(status),
        ]);
    }
    for adjustment in adjustments {
        let m = &adjustment.key.meter;
        rows.push(vec![
            Cell::Text(month.clone()),
            plain(m.bureau()),
            plain(name(m.bureau())),
            plain(m.environment()),
            plain(m.resource().as_str()),
            plain(format!("adjustment ({})", m.kind())),
            plain(m.tier().as_str()),
            Cell::Text(adjustment.key.rate_card.to_string()),
            plain(""),
            plain(zhengyun_metering::PriceUnit::of(m.resource()).name),
            plain(adjustment.unit_price.to_string()),
            plain(adjustment.amount.to_string()),
            plain(statement.currency.clone()),
            plain(adjustment.reference()),
            plain(adjustment.unit_seconds.to_string()),
            plain(""),
            plain(""),
            plain(status),
        ]);
    }
    for line in &statement.settlement {
        let bureau = line.bureau.as_deref().unwrap_or("");
        let role = match line.role {
            Role::Platform => "platform share",
            role => role.as_str(),
        };
        let mut reference = vec![month.clone(), line.role.as_str().to_owned()];
        reference.extend(line.bureau.clone());
        reference.extend(line.environment.clone());
        reference.push(line.resource.as_str().to_owned());
        rows.push(vec![
            Cell::Text(month.clone()),
            plain(bureau),
            plain(name(bureau)),
            plain(line.environment.clone().unwrap_or_default()),
            plain(line.resource.as_str()),
            plain(role),
            plain(line.tier.map_or("", |t| t.as_str())),
            plain(""),
            plain(line.quantity.to_string()),
            plain(line.unit.clone()),
            plain(""),
            plain(line.amount.to_string()),
            plain(statement.currency.clone()),
            plain(reference.join("/")),
            plain(line.unit_seconds.to_string()),
            plain(""),
            plain(""),
            plain(status),
        ]);
    }
    for credit in &statement.service_credits {
        rows.push(vec![
            Cell::Text(month.clone()),
            plain(credit.bureau.clone()),
            plain(name(&credit.bureau)),
            plain(credit.environment.clone()),
            plain(""),
            plain("sla credit"),
            plain(credit.tier.as_str()),
            plain(""),
            // Availability against the objective, and the credit's share of the charges.
            plain(credit.availability.to_string()),
            plain(format!("% available (objective {})", credit.objective)),
            plain(format!("{}% of {}", credit.credit_percent, credit.charges)),
            plain(credit.amount.to_string()),
            plain(statement.currency.clone()),
            plain(format!("{month}/sla/{}", credit.environment)),
            plain(""),
            plain(""),
            plain(""),
            plain(status),
        ]);
    }
    let (bureaus, platform) = payable;
    for (bureau, owed) in bureaus {
        rows.push(total_row(
            &month,
            bureau,
            &name(bureau),
            "total",
            owed.payable,
            &statement.currency,
            format!("{month}/{bureau}"),
            status,
        ));
    }
    rows.push(total_row(
        &month,
        "",
        "",
        "platform total",
        platform.payable,
        &statement.currency,
        month.clone(),
        status,
    ));
    let header: Vec<Cell> = COLUMNS
        .iter()
        .map(|(en, zh)| plain(if options.chinese_headers { *zh } else { *en }))
        .collect();
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row.iter().map(Cell::render).collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    download(
        &format!("zhengyun-statement-{month}.csv"),
        &text,
        options.charset,
    )
}

#[allow(clippy::too_many_arguments)]
fn total_row(
    month: &str,
    bureau: &str,
    name: &str,
    kind: &str,
    amount: Decimal,
    currency: &str,
    reference: String,
    status: &str,
) -> Vec<Cell> {
    let mut row = vec![
        Cell::Text(month.to_owned()),
        plain(bureau),
        plain(name),
        plain(""),
        plain(""),
        plain(kind),
    ];
    row.extend((0..5).map(|_| plain("")));
    row.extend([
        plain(amount.to_string()),
        plain(currency),
        plain(reference),
        plain(""),
        plain(""),
        plain(""),
        plain(status),
    ]);
    row
}

/// `text` as a CSV attachment named `filename` in `charset` (UTF-8 with a byte order mark, or
/// GB18030).
pub fn download(filename: &str, text: &str, charset: Charset) -> CsvDownload {
    let body: Vec<u8> = match charset {
        Charset::Utf8 => format!("\u{feff}{text}").into_bytes(),
        Charset::Gb18030 => encoding_rs::GB18030.encode(text).0.into_owned(),
    };
    CsvDownload {
        filename: filename.to_owned(),
        body,
        charset,
    }
}

/// A CSV file to download: its name, its encoded bytes and their character set.
#[derive(Debug)]
pub struct CsvDownload {
    filename: String,
    body: Vec<u8>,
    charset: Charset,
}

impl IntoResponse for CsvDownload {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.charset.content_type()),
        );
        if let Ok(value) =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", self.filename))
        {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    }
}

/// Rows of cells as CSV (CRLF line ends), each cell as [`csv_cell`] writes it.
pub fn csv_table(rows: &[Vec<String>]) -> String {
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            format!("{}\r\n", cells.join(","))
        })
        .collect()
}

/// A CSV field, quoted when needed, and defused when a spreadsheet would read it as a formula.
pub fn csv_cell(cell: &str) -> String {
    let defused = if cell.starts_with(['=', '+', '@'])
        || (cell.starts_with('-') && cell.parse::<Decimal>().is_err())
    {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    quote(&defused)
}

fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("区卫生健康委员会"), "区卫生健康委员会");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(csv_cell("-12.50"), "-12.50");
        assert_eq!(csv_cell("-x"), "'-x");
    }

    #[test]
    fn a_month_is_written_so_that_a_spreadsheet_keeps_it_as_text() {
        assert_eq!(
            Cell::Text("2026-11".to_owned()).render(),
            "\"=\"\"2026-11\"\"\""
        );
    }

    #[test]
    fn gb18030_encodes_chinese_names_for_legacy_finance_software() {
        let response = download("x.csv", "区财政局\r\n", Charset::Gb18030).into_response();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/csv; charset=gb18030"
        );
        let (bytes, _, _) = encoding_rs::GB18030.encode("区财政局");
        assert_eq!(
            bytes.len(),
            8,
            "two bytes per character, no byte order mark"
        );
        assert_eq!(Charset::parse("GBK"), Some(Charset::Gb18030));
        assert_eq!(Charset::parse("latin1"), None);
    }
}
