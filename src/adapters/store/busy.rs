//! The rep's busy times, as last read from their calendars.

use super::{Error, begin, execute, parse_timestamp, sql, timestamp};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use crate::adapters::calendar::Busy;

impl super::Store {
    /// Replaces the busy times with `intervals`, read at `now`.
    pub fn replace_busy_times(
        &mut self,
        intervals: &[Busy],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let action = "record the rep's busy times";
        let tx = begin(&mut self.conn)?;
        execute(&tx, "DELETE FROM busy_times", []).map_err(sql(action))?;
        for (start, end) in intervals {
            execute(
                &tx,
                "INSERT INTO busy_times (starts_at, ends_at) VALUES (?1, ?2)",
                params![timestamp(*start), timestamp(*end)],
            )
            .map_err(sql(action))?;
        }
        execute(
            &tx,
            "INSERT INTO busy_refresh (id, refreshed_at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET refreshed_at = excluded.refreshed_at",
            [timestamp(now)],
        )
        .map_err(sql(action))?;
        tx.commit().map_err(sql(action))
    }

    /// When the busy times were last read, if ever.
    pub fn busy_refreshed_at(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT refreshed_at FROM busy_refresh WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read when busy times were refreshed"))?;
        at.map(|t| parse_timestamp("busy refreshed_at", &t))
            .transpose()
    }

    /// Busy intervals overlapping `[from, to)`.
    pub fn busy_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Busy>, Error> {
        let action = "read the rep's busy times";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT starts_at, ends_at FROM busy_times WHERE ends_at > ?1 AND starts_at < ?2
                 ORDER BY starts_at",
            )
            .map_err(sql(action))?;
        let rows = stmt
            .query_map(params![timestamp(from), timestamp(to)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter()
            .map(|(s, e)| {
                Ok((
                    parse_timestamp("busy start", &s)?,
                    parse_timestamp("busy end", &e)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::adapters::store::Store;
    use chrono::{TimeZone, Utc};

    #[test]
    fn busy_times_are_replaced_and_queried_by_overlap() {
        let mut store = Store::open_in_memory().unwrap();
        let h = |hour| Utc.with_ymd_and_hms(2027, 3, 2, hour, 0, 0).unwrap();
        assert_eq!(store.busy_refreshed_at().unwrap(), None);
        store
            .replace_busy_times(&[(h(8), h(9)), (h(13), h(15))], h(7))
            .unwrap();
        assert_eq!(store.busy_between(h(9), h(14)).unwrap(), [(h(13), h(15))]);
        assert_eq!(store.busy_between(h(0), h(23)).unwrap().len(), 2);
        store.replace_busy_times(&[(h(10), h(11))], h(8)).unwrap();
        assert_eq!(store.busy_between(h(0), h(23)).unwrap(), [(h(10), h(11))]);
        assert_eq!(store.busy_refreshed_at().unwrap(), Some(h(8)));
    }
}
