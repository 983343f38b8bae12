//! Audit export for auditors: CSV, XLSX or JSON. The export is itself an audited security event.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use ballast_core::Problem;
use ballast_core::audit::{AuditDraft, AuditRecord, Outcome};
use ballast_core::guard::Principal;
use ballast_store::AuditQuery;

use crate::error::{ApiError, ApiResult};
use crate::service::{actor, audit_only};
use crate::state::AppState;

const COLUMNS: [&str; 10] = [
    "seq",
    "at",
    "actor",
    "real_name",
    "source_ip",
    "action",
    "object",
    "outcome",
    "detail",
    "hash",
];

fn row(r: &AuditRecord) -> [String; 10] {
    let c = r.parsed();
    let d = c.as_ref().map(|c| &c.draft);
    [
        r.seq.to_string(),
        r.at.to_rfc3339(),
        d.map(|d| d.actor.username.clone()).unwrap_or_default(),
        d.map(|d| d.actor.real_name.clone()).unwrap_or_default(),
        d.and_then(|d| d.source_ip.clone()).unwrap_or_default(),
        d.map(|d| d.action.clone()).unwrap_or_default(),
        d.map(|d| {
            format!(
                "{}:{}",
                d.object_type,
                d.object_id.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default(),
        d.map(|d| d.outcome.key().to_string()).unwrap_or_default(),
        d.and_then(|d| d.detail.clone()).unwrap_or_default(),
        r.hash.clone(),
    ]
}

pub async fn audit_export(
    state: &AppState,
    p: &Principal,
    format: &str,
    q: AuditQuery,
) -> ApiResult<Response> {
    let records = state.store.audit_search(&q).await?;
    let (content_type, ext, body): (&str, &str, Vec<u8>) = match format {
        "json" => (
            "application/json",
            "json",
            serde_json::to_vec_pretty(&records).unwrap_or_default(),
        ),
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(COLUMNS);
            for r in &records {
                let _ = w.write_record(row(r));
            }
            (
                "text/csv; charset=utf-8",
                "csv",
                w.into_inner().unwrap_or_default(),
            )
        }
        "xlsx" => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            let bold = rust_xlsxwriter::Format::new().set_bold();
            for (c, h) in COLUMNS.iter().enumerate() {
                let _ = ws.write_string_with_format(0, c as u16, *h, &bold);
            }
            for (i, r) in records.iter().enumerate() {
                for (c, v) in row(r).iter().enumerate() {
                    let _ = ws.write_string(i as u32 + 1, c as u16, v);
                }
            }
            let _ = ws.set_freeze_panes(1, 0);
            let bytes = wb.save_to_buffer().map_err(|e| {
                ApiError::bad_request(Problem::new(
                    "export.failed",
                    format!("导出失败：{e}"),
                    format!("export failed: {e}"),
                ))
            })?;
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
                bytes,
            )
        }
        other => {
            return Err(ApiError::bad_request(Problem::field(
                "export.format_invalid",
                "format",
                format!("导出格式 {other:?} 无效，应为 csv、xlsx 或 json"),
                format!("export format {other:?} is invalid: use csv, xlsx or json"),
            )));
        }
    };
    let d = AuditDraft::new(actor(p), "audit.export", "audit", Outcome::Success)
        .from_ip(p.source_ip.map(|i| i.to_string()))
        .detail(format!("{} records as {ext}", records.len()));
    audit_only(state, d).await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"ballast-audit.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}
