//! The read queries both backends share word for word. Each backend module
//! instantiates them with [`shared_queries!`]; the names inside (`audit_logs`,
//! `Row`, `decode_record`, `mac_bytes`, `db_time`, `filter_ip`, `selection`)
//! are that module's own, which is all that differs.

/// Declares `filtered`, `query_page`, `count`, `chain_range`, `rows_after`,
/// `max_id` and `mac_at` for the backend module it is invoked in.
macro_rules! shared_queries {
    (conn = $conn:ty, backend = $backend:ty) => {
        type Boxed<'a> = audit_logs::BoxedQuery<'a, $backend, diesel::dsl::SqlTypeOf<Selection>>;

        /// The rows matching `filter`, as a boxed query.
        fn filtered<'a>(filter: &'a AuditFilter) -> Boxed<'a> {
            let mut query = audit_logs::table.select(selection()).into_boxed();
            if let Some(user_id) = &filter.user_id {
                query = query.filter(audit_logs::user_id.eq(user_id));
            }
            if let Some(email) = &filter.email {
                query = query.filter(audit_logs::user_email.eq(email));
            }
            if !filter.actions.is_empty() {
                query = query.filter(audit_logs::action.eq_any(&filter.actions));
            }
            if let Some(resource) = &filter.resource {
                query = query.filter(audit_logs::resource.eq(resource));
            }
            if let Some(resource_id) = &filter.resource_id {
                query = query.filter(audit_logs::resource_id.eq(resource_id));
            }
            if let Some(status) = filter.status {
                query = query.filter(audit_logs::status.eq(status.as_str()));
            }
            if let Some(since) = filter.since {
                query = query.filter(audit_logs::created_at.ge(db_time(since)));
            }
            if let Some(until) = filter.until {
                query = query.filter(audit_logs::created_at.lt(db_time(until)));
            }
            if let Some(network) = filter.ip {
                query = filter_ip(query, network);
            }
            if let Some(request_id) = &filter.request_id {
                query = query.filter(audit_logs::request_id.eq(request_id));
            }
            query
        }

        /// One page in time order, keyset-paginated on `(created_at, id)`.
        pub(crate) fn query_page(conn: &mut $conn, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
            let mut query = filtered(filter);
            if let Some(cursor) = page.after {
                let at = db_time(cursor.created_at);
                query = match page.order {
                    Order::OldestFirst => query.filter(
                        audit_logs::created_at
                            .gt(at.clone())
                            .or(audit_logs::created_at.eq(at).and(audit_logs::id.gt(cursor.id))),
                    ),
                    Order::NewestFirst => query.filter(
                        audit_logs::created_at
                            .lt(at.clone())
                            .or(audit_logs::created_at.eq(at).and(audit_logs::id.lt(cursor.id))),
                    ),
                };
            }
            query = match page.order {
                Order::OldestFirst => query.order((audit_logs::created_at.asc(), audit_logs::id.asc())),
                Order::NewestFirst => query.order((audit_logs::created_at.desc(), audit_logs::id.desc())),
            };
            let rows: Vec<Row> = query.limit(i64::from(page.limit) + 1).load(conn)?;
            let mut records = rows.into_iter().map(decode_record).collect::<Result<Vec<_>>>()?;
            let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
            let next = (records.len() > limit).then(|| {
                records.truncate(limit);
                records.last().map(Cursor::after)
            });
            Ok(Page {
                records,
                next: next.flatten(),
            })
        }

        /// How many rows match.
        pub(crate) fn count(conn: &mut $conn, filter: &AuditFilter) -> Result<u64> {
            let count: i64 = filtered(filter).select(diesel::dsl::count_star()).first(conn)?;
            Ok(u64::try_from(count).unwrap_or(0))
        }

        /// The rows at positions `after_id + 1 ..= last_id`, in chain order. A
        /// bounded range, not a LIMIT, so that the planner picks the primary
        /// key even on a freshly loaded table without statistics.
        pub(crate) fn chain_range(conn: &mut $conn, after_id: i64, last_id: i64) -> Result<Vec<VerifyRow>> {
            let rows: Vec<Row> = audit_logs::table
                .select(selection())
                .filter(audit_logs::id.gt(after_id).and(audit_logs::id.le(last_id)))
                .order(audit_logs::id.asc())
                .load(conn)?;
            Ok(rows.into_iter().map(Row::into_verify_row).collect())
        }

        /// Up to `limit` rows above position `after_id`, in chain order: a
        /// keyset read on the primary key.
        pub(crate) fn rows_after(conn: &mut $conn, after_id: i64, limit: i64) -> Result<Vec<AuditRecord>> {
            let rows: Vec<Row> = audit_logs::table
                .select(selection())
                .filter(audit_logs::id.gt(after_id))
                .order(audit_logs::id.asc())
                .limit(limit)
                .load(conn)?;
            rows.into_iter().map(decode_record).collect()
        }

        /// The highest position stored, if any.
        pub(crate) fn max_id(conn: &mut $conn) -> Result<Option<i64>> {
            Ok(audit_logs::table
                .select(diesel::dsl::max(audit_logs::id))
                .first(conn)?)
        }

        /// The MAC stored at position `id`.
        pub(crate) fn mac_at(conn: &mut $conn, id: i64) -> Result<Option<[u8; 32]>> {
            let mac: Option<Vec<u8>> = audit_logs::table
                .filter(audit_logs::id.eq(id))
                .select(audit_logs::mac)
                .first(conn)
                .optional()?;
            Ok(mac.and_then(|mac| mac_bytes(&mac)))
        }
    };
}

pub(crate) use shared_queries;
