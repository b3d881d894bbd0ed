//! The SQL both backends share word for word: the reads, and the retention
//! and erasure writes. Each backend module instantiates them with [`shared_queries!`]; the names inside (`audit_logs`,
//! `Row`, `decode_record`, `mac_bytes`, `db_time`, `filter_ip`, `selection`)
//! are that module's own, which is all that differs.

/// Declares `filtered`, `query_page`, `count`, `chain_range_by_query`, `max_seq`,
/// `mac_at`, `newest_row`, `chain_ids`, `read_heads`, `prune_records`,
/// `cut_seq`, `record_prune`, `delete_pruned`, `erasures` and `erase` for the backend module it is invoked in.
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
            if let Some(chain) = filter.chain {
                query = query.filter(audit_logs::chain_id.eq(chain));
            }
            query
        }

        /// One page in time order, keyset-paginated on `(created_at, id)`.
        ///
        /// A row whose stored time is damaged sorts where its stored value
        /// does, which no cursor can name, so a page never ends on one: it
        /// ends on the last row before it whose time is intact, or, when
        /// the whole page is damaged, runs on (up to
        /// [`PageRequest::MAX_LIMIT`] more rows) to the next intact one.
        pub(crate) fn query_page(conn: &mut $conn, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
            let build = || {
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
                match page.order {
                    Order::OldestFirst => query.order((audit_logs::created_at.asc(), audit_logs::id.asc())),
                    Order::NewestFirst => query.order((audit_logs::created_at.desc(), audit_logs::id.desc())),
                }
            };
            let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
            let rows: Vec<Row> = build().limit(i64::from(page.limit) + 1).load(conn)?;
            let mut records: Vec<AuditRecord> = rows.into_iter().map(decode_record).collect();
            if records.len() <= limit {
                return Ok(Page { records, next: None });
            }
            let mut end = records[..limit].iter().rposition(|record| !record.time_damaged());
            if end.is_none() {
                let fetch = i64::from(page.limit) + i64::from(PageRequest::MAX_LIMIT) + 1;
                let rows: Vec<Row> = build().limit(fetch).load(conn)?;
                records = rows.into_iter().map(decode_record).collect();
                let whole = usize::try_from(fetch).unwrap_or(usize::MAX);
                if records.len() < whole {
                    return Ok(Page { records, next: None });
                }
                end = records[..whole - 1]
                    .iter()
                    .rposition(|record| !record.time_damaged());
            }
            let Some(end) = end else {
                return Err(Error::new(
                    ErrorKind::Decode,
                    format!(
                        "more than {} rows in a row have a damaged time, so no page can end among them; \
                         `zt audit verify` names them",
                        PageRequest::MAX_LIMIT
                    ),
                ));
            };
            records.truncate(end + 1);
            let next = records.last().map(Cursor::after);
            Ok(Page { records, next })
        }

        /// How many rows match.
        pub(crate) fn count(conn: &mut $conn, filter: &AuditFilter) -> Result<u64> {
            let count: i64 = filtered(filter).select(diesel::dsl::count_star()).first(conn)?;
            Ok(u64::try_from(count).unwrap_or(0))
        }

        /// The rows of `chain_id` at positions `after + 1 ..= last`, in
        /// chain order. A bounded range, not a LIMIT, so that the planner
        /// picks the position index even on a freshly loaded table without
        /// statistics.
        // PostgreSQL reads ranges through COPY instead (`pg_copy`).
        #[allow(dead_code)]
        fn chain_range_by_query(conn: &mut $conn, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>> {
            let rows: Vec<Row> = audit_logs::table
                .select(selection())
                .filter(audit_logs::chain_id.eq(chain_id))
                .filter(
                    audit_logs::chain_seq
                        .gt(after)
                        .and(audit_logs::chain_seq.le(last)),
                )
                .order(audit_logs::chain_seq.asc())
                .load(conn)?;
            Ok(rows.into_iter().map(Row::into_verify_row).collect())
        }

        /// The highest position stored in `chain_id`, if any.
        pub(crate) fn max_seq(conn: &mut $conn, chain_id: i16) -> Result<Option<i64>> {
            Ok(audit_logs::table
                .filter(audit_logs::chain_id.eq(chain_id))
                .select(diesel::dsl::max(audit_logs::chain_seq))
                .first(conn)?)
        }

        /// The MAC stored at position `seq` of `chain_id`.
        pub(crate) fn mac_at(conn: &mut $conn, chain_id: i16, seq: i64) -> Result<Option<[u8; 32]>> {
            let mac: Option<Vec<u8>> = audit_logs::table
                .filter(
                    audit_logs::chain_id
                        .eq(chain_id)
                        .and(audit_logs::chain_seq.eq(seq)),
                )
                .select(audit_logs::mac)
                .first(conn)
                .optional()?;
            Ok(mac.and_then(|mac| mac_bytes(&mac)))
        }

        /// The row with the highest id.
        pub(crate) fn newest_row(conn: &mut $conn) -> Result<Option<VerifyRow>> {
            let row: Option<Row> = audit_logs::table
                .select(selection())
                .order(audit_logs::id.desc())
                .first(conn)
                .optional()?;
            Ok(row.map(Row::into_verify_row))
        }

        /// Each chain's last position among the rows with an id up to `id`.
        pub(crate) fn positions_at_id(conn: &mut $conn, id: i64) -> Result<Vec<(i16, i64)>> {
            let rows: Vec<(i16, Option<i64>)> = audit_logs::table
                .filter(audit_logs::id.le(id))
                .group_by(audit_logs::chain_id)
                .select((audit_logs::chain_id, diesel::dsl::max(audit_logs::chain_seq)))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .filter_map(|(chain, seq)| Some((chain, seq?)))
                .collect())
        }

        /// The chain ids that have rows, by a skip scan of the position
        /// index: one probe per chain, not a pass over the rows.
        pub(crate) fn chain_ids(conn: &mut $conn) -> Result<Vec<i16>> {
            #[derive(diesel::QueryableByName)]
            struct ChainIdRow {
                #[diesel(sql_type = diesel::sql_types::SmallInt)]
                chain_id: i16,
            }
            let rows: Vec<ChainIdRow> = diesel::sql_query(
                "WITH RECURSIVE chains(chain_id) AS ( \
                     SELECT min(chain_id) FROM audit_logs \
                     UNION ALL \
                     SELECT (SELECT min(l.chain_id) FROM audit_logs l WHERE l.chain_id > chains.chain_id) \
                     FROM chains WHERE chains.chain_id IS NOT NULL) \
                 SELECT CAST(chain_id AS SMALLINT) AS chain_id FROM chains WHERE chain_id IS NOT NULL",
            )
            .load(conn)?;
            Ok(rows.into_iter().map(|row| row.chain_id).collect())
        }

        /// Every prune record, by chain and position.
        pub(crate) fn prune_records(conn: &mut $conn) -> Result<Vec<PruneRecord>> {
            let rows: Vec<(i16, i64, Vec<u8>, Vec<u8>)> = audit_prunes::table
                .select((
                    audit_prunes::chain_id,
                    audit_prunes::upto_seq,
                    audit_prunes::upto_mac,
                    audit_prunes::tag,
                ))
                .order((audit_prunes::chain_id.asc(), audit_prunes::upto_seq.asc()))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|(chain, seq, mac, tag)| PruneRecord { chain, seq, mac, tag })
                .collect())
        }

        /// The last position of `chain_id` before its first row written at
        /// or after `before`: the end of the chain's prefix that is older.
        pub(crate) fn cut_seq(conn: &mut $conn, chain_id: i16, before: zt_types::Timestamp) -> Result<Option<i64>> {
            let first_kept: Option<i64> = audit_logs::table
                .filter(audit_logs::chain_id.eq(chain_id))
                .filter(audit_logs::created_at.ge(db_time(before)))
                .select(diesel::dsl::min(audit_logs::chain_seq))
                .first(conn)?;
            match first_kept {
                Some(seq) => Ok(Some(seq - 1)),
                None => max_seq(conn, chain_id),
            }
        }

        /// Records a prune: from then on the triggers let the deletes of the
        /// rows it covers through, and verification starts after it. Does
        /// nothing when the same prune is recorded already.
        pub(crate) fn record_prune(conn: &mut $conn, record: &PruneRecord, at: zt_types::Timestamp) -> Result<()> {
            diesel::insert_into(audit_prunes::table)
                .values((
                    audit_prunes::chain_id.eq(record.chain),
                    audit_prunes::upto_seq.eq(record.seq),
                    audit_prunes::upto_mac.eq(&record.mac),
                    audit_prunes::pruned_at.eq(db_time(at)),
                    audit_prunes::tag.eq(&record.tag),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(())
        }

        /// Deletes the rows of `chain_id` up to `seq`, which a recorded prune
        /// covers; returns how many.
        pub(crate) fn delete_pruned(conn: &mut $conn, chain_id: i16, seq: i64) -> Result<u64> {
            let deleted = diesel::delete(
                audit_logs::table
                    .filter(audit_logs::chain_id.eq(chain_id))
                    .filter(audit_logs::chain_seq.le(seq)),
            )
            .execute(conn)?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        }

        /// The erasures recorded for `chain_id` at positions `after + 1 ..= last`:
        /// each position and the commitment kept for it.
        pub(crate) fn erasures(conn: &mut $conn, chain_id: i16, after: i64, last: i64) -> Result<Vec<(i64, Vec<u8>)>> {
            Ok(audit_erasures::table
                .filter(audit_erasures::chain_id.eq(chain_id))
                .filter(
                    audit_erasures::chain_seq
                        .gt(after)
                        .and(audit_erasures::chain_seq.le(last)),
                )
                .select((audit_erasures::chain_seq, audit_erasures::commitment))
                .load(conn)?)
        }

        /// Records the erasure of the row at `seq` of `chain_id` with its
        /// commitment, then empties its personal fields, in one transaction;
        /// the triggers let exactly this update through.
        pub(crate) fn erase(
            conn: &mut $conn,
            chain_id: i16,
            seq: i64,
            commitment: &[u8; 32],
            at: zt_types::Timestamp,
        ) -> Result<()> {
            conn.transaction(|conn| {
                diesel::insert_into(audit_erasures::table)
                    .values((
                        audit_erasures::chain_id.eq(chain_id),
                        audit_erasures::chain_seq.eq(seq),
                        audit_erasures::commitment.eq(&commitment[..]),
                        audit_erasures::erased_at.eq(db_time(at)),
                    ))
                    .execute(conn)?;
                let updated = empty_personal_fields(conn, chain_id, seq)?;
                if updated != 1 {
                    return Err(Error::new(
                        ErrorKind::Database,
                        format!("chain {chain_id} has no row at position {seq} to erase"),
                    ));
                }
                Ok(())
            })
        }

        /// Every chain's head, by chain id.
        pub(crate) fn read_heads(conn: &mut $conn) -> Result<Vec<Head>> {
            let rows: Vec<(HeadId, i64, Vec<u8>)> = audit_chain_head::table
                .select((audit_chain_head::id, audit_chain_head::seq, audit_chain_head::mac))
                .order(audit_chain_head::id.asc())
                .load(conn)?;
            rows.into_iter()
                .map(|(chain, seq, mac)| {
                    let chain = i16::try_from(chain).map_err(|_| {
                        Error::new(
                            ErrorKind::Decode,
                            format!("chain head id {chain} is out of range"),
                        )
                    })?;
                    let mac = mac_bytes(&mac).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Decode,
                            format!("chain {chain}'s head MAC is not 32 bytes"),
                        )
                    })?;
                    Ok(Head { chain, seq, mac })
                })
                .collect()
        }
    };
}

pub(crate) use shared_queries;

/// The [`crate::backend::Store`] methods that only call the backend module's
/// function of the same name; invoked inside each backend's `impl Store`.
macro_rules! delegated_store_methods {
    () => {
        fn append_batch(
            &mut self,
            chain: &Chain,
            events: &[AuditEvent],
            dedupe: bool,
            target: Target,
        ) -> Result<(Vec<Recorded>, Head)> {
            append_batch(self, chain, events, dedupe, target)
        }

        fn find_event(&mut self, event_id: &Uuid) -> Result<Option<Recorded>> {
            find_event(self, event_id)
        }

        fn read_heads(&mut self) -> Result<Vec<Head>> {
            read_heads(self)
        }

        fn chain_ids(&mut self) -> Result<Vec<i16>> {
            chain_ids(self)
        }

        fn query_page(&mut self, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
            query_page(self, filter, page)
        }

        fn count(&mut self, filter: &AuditFilter) -> Result<u64> {
            count(self, filter)
        }

        fn chain_range(&mut self, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>> {
            chain_range(self, chain_id, after, last)
        }

        fn max_seq(&mut self, chain_id: i16) -> Result<Option<i64>> {
            max_seq(self, chain_id)
        }

        fn mac_at(&mut self, chain_id: i16, seq: i64) -> Result<Option<[u8; 32]>> {
            mac_at(self, chain_id, seq)
        }

        fn newest_row(&mut self) -> Result<Option<VerifyRow>> {
            newest_row(self)
        }

        fn positions_at_id(&mut self, id: i64) -> Result<Vec<(i16, i64)>> {
            positions_at_id(self, id)
        }

        fn prune_records(&mut self) -> Result<Vec<PruneRecord>> {
            prune_records(self)
        }

        fn cut_seq(&mut self, chain_id: i16, before: zt_types::Timestamp) -> Result<Option<i64>> {
            cut_seq(self, chain_id, before)
        }

        fn record_prune(&mut self, record: &PruneRecord, at: zt_types::Timestamp) -> Result<()> {
            record_prune(self, record, at)
        }

        fn delete_pruned(&mut self, chain_id: i16, seq: i64) -> Result<u64> {
            delete_pruned(self, chain_id, seq)
        }

        fn erasures(&mut self, chain_id: i16, after: i64, last: i64) -> Result<Vec<(i64, Vec<u8>)>> {
            erasures(self, chain_id, after, last)
        }

        fn erase(&mut self, chain_id: i16, seq: i64, commitment: &[u8; 32], at: zt_types::Timestamp) -> Result<()> {
            erase(self, chain_id, seq, commitment, at)
        }
    };
}

pub(crate) use delegated_store_methods;
