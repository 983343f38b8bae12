//! Trading calendars (placeholder until the calendar work lands).
