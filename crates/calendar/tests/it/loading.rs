//! Loading extra calendars (the files of a calendar directory, passed in as contents),
//! overriding bundled years, validation errors, custom calendars and diffs.

use ballast_calendar::{
    CalendarError, CalendarFile, CalendarSet, DayKind, Layer, bundled, diff, parse_calendar_file,
};

/// The bundled calendars plus `files` as the extra layer.
fn load(files: &[(&str, &str)]) -> Result<CalendarSet, CalendarError> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (format!("/etc/ballast/calendars/{n}"), t.to_string()))
        .collect();
    CalendarSet::with_extra(Some(Layer::from_sources("dir", &sources)?))
}

use super::{d, sse};

const Y2027: &str = r#"schema = 1
calendars = ["sse", "szse"]
year = 2027
sources = ["test data, not a real notice"]

[[closure]]
from = 2027-01-01
to = 2027-01-03
reason_zh = "元旦"
reason_en = "New Year's Day"
"#;

#[test]
fn a_directory_extends_coverage() {
    let set = load(&[("cn-exchanges-2027.toml", Y2027)]).unwrap();
    for id in ["sse", "szse"] {
        let c = set.get(id).unwrap();
        assert_eq!(c.coverage().last, d("2027-12-31"));
        assert!(!c.is_trading_day(d("2027-01-01")).unwrap());
        assert_eq!(
            c.next_trading_day(d("2026-12-31")).unwrap(),
            d("2027-01-04")
        );
    }
    // The bundled set is untouched.
    assert_eq!(sse().coverage().last, d("2026-12-31"));
}

#[test]
fn a_directory_year_replaces_the_bundled_year() {
    let (_, text) = bundled::FILES
        .iter()
        .find(|(n, _)| *n == "cn-exchanges-2026.toml")
        .unwrap();
    // Drop the Dragon Boat closure (2026-06-19) for the test.
    let patched = text.replace(
        "from = 2026-06-19\nto = 2026-06-21",
        "from = 2026-06-20\nto = 2026-06-21",
    );
    assert_ne!(&patched, text);
    let set = load(&[("override-2026.toml", &patched)]).unwrap();
    assert!(
        set.get("sse")
            .unwrap()
            .is_trading_day(d("2026-06-19"))
            .unwrap()
    );
    assert!(!sse().is_trading_day(d("2026-06-19")).unwrap());
}

#[test]
fn invalid_files_in_a_directory_name_file_line_and_field() {
    let bad = Y2027.replace("to = 2027-01-03", "to = 2028-01-03");
    let e = load(&[("bad.toml", &bad)]).unwrap_err();
    let CalendarError::Invalid(issues) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(issues.len(), 1);
    let i = &issues.0[0];
    assert_eq!(i.file, "/etc/ballast/calendars/bad.toml");
    assert_eq!(i.line, Some(8));
    assert_eq!(i.field, "closure[0].to");
    assert!(
        e.message_en().contains(
            "bad.toml:8:6: field closure[0].to: date 2028-01-03 is outside the declared year 2027"
        ),
        "{}",
        e.message_en()
    );
    assert!(e.message_zh().contains("不在声明的年份 2027 内"));
    assert_eq!(e.code(), "calendar.invalid_data");
}

#[test]
fn two_files_for_the_same_year_in_one_layer_are_rejected() {
    let e = load(&[("a.toml", Y2027), ("b.toml", Y2027)]).unwrap_err();
    assert!(
        e.message_en()
            .contains("calendar sse year 2027 is defined twice"),
        "{}",
        e.message_en()
    );
}

#[test]
fn gaps_and_orphans_are_rejected() {
    let e = load(&[("y2028.toml", &Y2027.replace("2027", "2028"))]).unwrap_err();
    assert!(
        e.message_en()
            .contains("calendar sse has no data for 2027 (years must be contiguous)"),
        "{}",
        e.message_en()
    );

    let hk = Y2027.replace("[\"sse\", \"szse\"]", "[\"hkex\"]");
    let e = load(&[("hk.toml", &hk)]).unwrap_err();
    assert!(
        e.message_en()
            .contains("calendar hkex has no definition file"),
        "{}",
        e.message_en()
    );
}

#[test]
fn a_custom_business_calendar_opens_on_make_up_days() {
    let firm_def = r#"schema = 1
[calendar]
id = "firm"
name_zh = "公司营业日历"
name_en = "Firm business calendar"
makeup_workdays_open = true

[[session]]
effective_from = 2026-01-01
phases = [ { phase = "continuous_trading", start = "08:30", end = "17:30" } ]
"#;
    let firm_2026 = r#"schema = 1
calendars = ["firm"]
year = 2026
[[closure]]
from = 2026-02-15
to = 2026-02-23
reason_zh = "春节"
reason_en = "Spring Festival"
[[makeup_workday]]
date = 2026-02-14
reason_zh = "春节调休上班"
reason_en = "Spring Festival make-up workday"
"#;
    let set = load(&[
        ("firm.calendar.toml", firm_def),
        ("firm-2026.toml", firm_2026),
    ])
    .unwrap();
    let firm = set.get("firm").unwrap();
    assert!(firm.is_trading_day(d("2026-02-14")).unwrap());
    assert!(matches!(
        firm.day_info(d("2026-02-14")).unwrap().kind,
        DayKind::MakeupWorkday { .. }
    ));
    assert!(
        !set.get("sse")
            .unwrap()
            .is_trading_day(d("2026-02-14"))
            .unwrap()
    );
    assert_eq!(firm.coverage().first, d("2026-01-01"));
    assert!(firm.is_trading_day(d("2025-12-31")).is_err());
    assert!(matches!(
        set.get("nope"),
        Err(CalendarError::UnknownCalendar { .. })
    ));
}

#[test]
fn diff_lists_added_and_removed_days() {
    let (_, text) = bundled::FILES
        .iter()
        .find(|(n, _)| *n == "cn-exchanges-2026.toml")
        .unwrap();
    let CalendarFile::Year(old) = parse_calendar_file("old", text).unwrap() else {
        panic!()
    };
    let patched = text
        .replace(
            "from = 2026-06-19\nto = 2026-06-21",
            "from = 2026-06-20\nto = 2026-06-22",
        )
        .replace("date = 2026-05-09", "date = 2026-05-10");
    let CalendarFile::Year(new) = parse_calendar_file("new", &patched).unwrap() else {
        panic!()
    };
    let dfx = diff(&old.data, &new.data);
    assert_eq!(dfx.removed_closures.len(), 1);
    assert_eq!(dfx.added_closures.len(), 1);
    assert_eq!(dfx.removed_makeup_workdays[0].date, d("2026-05-09"));
    assert_eq!(dfx.added_makeup_workdays[0].date, d("2026-05-10"));
    assert_eq!(dfx.trading_days_added, vec![d("2026-06-19")]);
    assert_eq!(dfx.trading_days_removed, vec![d("2026-06-22")]);
    let lines = dfx.render();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("- 休市 closure 2026-06-19..2026-06-21 端午节"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+ 休市 closure 2026-06-20..2026-06-22"))
    );
    assert!(diff(&old.data, &old.data).is_empty());
}

mod no_panic {
    use ballast_calendar::{PolicySet, Schedule, bundled, parse_calendar_file};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// No input makes the parsers panic: arbitrary text, and a bundled file with a
        /// slice cut out or a character replaced.
        #[test]
        fn parsers_never_panic(text in ".{0,300}", cut in 0usize..4000, len in 0usize..40, c in any::<char>()) {
            let _ = parse_calendar_file("x.toml", &text);
            let _ = PolicySet::from_toml("p.toml", &text);
            let _ = Schedule::parse(&text);
            let (_, year) = bundled::FILES[5];
            let chars: Vec<char> = year.chars().collect();
            let start = cut.min(chars.len());
            let end = (start + len).min(chars.len());
            let mut mutated: String = chars[..start].iter().collect();
            mutated.push(c);
            mutated.extend(chars[end..].iter());
            let _ = parse_calendar_file("m.toml", &mutated);
            let policy: String = bundled::EXAMPLE_POLICIES.chars().take(start).chain(std::iter::once(c)).chain(bundled::EXAMPLE_POLICIES.chars().skip(end)).collect();
            let _ = PolicySet::from_toml("p.toml", &policy);
        }

        #[test]
        fn schedule_parser_never_panics(expr in "[0-9*/,@:+ a-z-]{0,40}") {
            let _ = Schedule::parse(&expr);
        }
    }
}
