//! Behaviour both backends share.

use cg_ledger::{LedgerError, NewEvent, Store, import_file};
use cg_model::consent::ConsentSource;
use cg_model::progress::NoProgress;
use cg_model::{EventId, MemberId, Purpose, Timestamp};
use cg_test_support::instant;

use crate::each_backend;

fn ev(member: i64, granted: bool, at: &str) -> NewEvent {
    NewEvent::new(
        MemberId(member),
        Purpose::genai_training(),
        granted,
        instant(at),
    )
}

#[test]
fn as_of_before_between_and_after_a_grant_and_a_withdrawal() {
    each_backend(|s| {
        s.append(&[ev(1, true, "2025-01-10"), ev(1, false, "2025-06-10")])
            .unwrap();
        let g = Purpose::genai_training();
        let at = |s: &mut dyn Store, t| s.state_at(MemberId(1), &g, instant(t)).unwrap();
        assert_eq!(at(s, "2025-01-01").0.granted(true), None);
        let (state, deciding) = at(s, "2025-03-01");
        assert_eq!(state.granted(true), Some(true));
        assert_eq!(deciding.len(), 1);
        assert_eq!(deciding[0].event.ts, instant("2025-01-10"));
        assert_eq!(at(s, "2025-06-10").0.granted(true), Some(false));
        assert_eq!(at(s, "2030-01-01").0.granted(true), Some(false));
        // Another member and another purpose are unaffected.
        assert_eq!(
            s.state_at(MemberId(2), &g, instant("2030-01-01"))
                .unwrap()
                .0
                .granted(true),
            None
        );
        let other = Purpose::known("ranking_training").unwrap();
        assert_eq!(
            s.state_at(MemberId(1), &other, instant("2030-01-01"))
                .unwrap()
                .0
                .granted(true),
            None
        );
    });
}

#[test]
fn events_are_totally_ordered_and_history_keeps_everything() {
    each_backend(|s| {
        let stored = s
            .append(&[
                ev(5, true, "2025-01-10"),
                ev(5, false, "2025-01-10"),
                ev(6, true, "2024-01-01"),
            ])
            .unwrap();
        assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
        let h = s.history(MemberId(5)).unwrap();
        assert_eq!(h.len(), 2);
        // Same timestamp: the later seq wins.
        let (state, _) = s
            .state_at(
                MemberId(5),
                &Purpose::genai_training(),
                instant("2025-02-01"),
            )
            .unwrap();
        assert_eq!(state.granted(true), Some(false));
    });
}

#[test]
fn event_ids_make_retries_idempotent_and_conflicts_write_nothing() {
    each_backend(|s| {
        let mut e = ev(7, false, "2025-01-10");
        e.event.event_id = Some(EventId(42));
        e.event.source = ConsentSource::ObjectionForm;
        e.metadata = Some(serde_json::json!({"collection_method": "web_form", "language": "de"}));
        let first = s.append(std::slice::from_ref(&e)).unwrap();
        let again = s.append(std::slice::from_ref(&e)).unwrap();
        assert_eq!(first[0].seq, again[0].seq);
        assert_eq!(again[0].new, e);
        assert_eq!(s.stats().unwrap().events, 1);
        let mut different = e.clone();
        different.event.granted = true;
        let before = s.stats().unwrap();
        let err = s
            .append(&[ev(8, true, "2025-01-01"), different])
            .unwrap_err();
        assert!(
            matches!(err, LedgerError::Conflict { event_id: 42 }),
            "{err}"
        );
        assert_eq!(
            s.stats().unwrap(),
            before,
            "a conflict rolls back the whole append"
        );
    });
}

#[test]
fn gpc_signals_and_other_purposes_are_kept_apart() {
    each_backend(|s| {
        let mut gpc = ev(9, false, "2025-02-01");
        gpc.event.source = ConsentSource::Gpc;
        s.append(&[ev(9, true, "2025-01-01"), gpc]).unwrap();
        let (state, deciding) = s
            .state_at(
                MemberId(9),
                &Purpose::genai_training(),
                instant("2025-03-01"),
            )
            .unwrap();
        assert_eq!(state.granted(true), Some(false));
        assert_eq!(state.granted(false), Some(true));
        assert_eq!(deciding.len(), 2);
        let mut rows = Vec::new();
        s.snapshot(
            &Purpose::genai_training(),
            instant("2025-03-01"),
            &mut |r| {
                rows.push(r);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].gpc_at, Some(instant("2025-02-01")));
        assert!(rows[0].explicit.as_ref().unwrap().granted);
    });
}

#[test]
fn import_of_a_generated_corpus_and_snapshot_equal_the_fold() {
    let (dir, summary) = cg_test_support::small_corpus(2_000, 100, cg_io::Format::Parquet);
    each_backend(|s| {
        for t in &summary.tables[..5] {
            import_file(s, &t.path, &NoProgress).unwrap();
        }
        let stats = s.stats().unwrap();
        assert_eq!(stats.members, 2_000);
        assert_eq!(stats.events, summary.tables[2].rows);
        assert_eq!(stats.notices, summary.tables[3].rows);
        // Re-importing the same events is idempotent (event ids).
        let again = import_file(s, &summary.tables[2].path, &NoProgress).unwrap();
        assert_eq!(again.events, 0);
        assert_eq!(again.duplicates, summary.tables[2].rows);
        // The snapshot equals the per-member fold.
        let as_of = instant("2025-12-01");
        let purpose = Purpose::genai_training();
        let mut rows = Vec::new();
        s.snapshot(&purpose, as_of, &mut |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
        assert!(rows.len() > 100);
        for r in rows.iter().take(300) {
            let (state, _) = s.state_at(r.member_id, &purpose, as_of).unwrap();
            assert_eq!(
                state.explicit.as_deref(),
                r.explicit.as_ref(),
                "member {}",
                r.member_id
            );
            assert_eq!(state.gpc_signal.map(|g| g.at), r.gpc_at);
        }
        let facts = s.member(MemberId(1)).unwrap().unwrap();
        assert!(facts.record.is_some());
        assert!(s.member(MemberId(999_999)).unwrap().is_none());
    });
    drop(dir);
}

#[test]
fn a_bad_row_rejects_the_whole_file() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("consent.csv");
    std::fs::write(
        &path,
        "member_id,purpose,granted,ts\n1,genai_training,true,2025-01-01\n2,GenAI Training,true,2025-01-01\n",
    )
    .unwrap();
    each_backend(|s| {
        let err = import_file(s, &path, &NoProgress).unwrap_err().to_string();
        assert!(
            err.contains("consent.csv") && err.contains("row 2") && err.contains("purpose"),
            "{err}"
        );
        assert_eq!(s.stats().unwrap().events, 0);
    });
    let _ = Timestamp::MIN;
}

#[test]
fn a_members_file_naming_a_member_twice_is_refused_like_a_build_refuses_it() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("members.csv");
    std::fs::write(
        &path,
        "member_id,country,birth_date\n1,DE,1990-01-01\n2,US,\n1,US,\n",
    )
    .unwrap();
    each_backend(|s| {
        let err = import_file(s, &path, &NoProgress).unwrap_err().to_string();
        assert!(
            err.contains("members.csv")
                && err.contains("row 3")
                && err.contains("member_id")
                && err.contains("duplicate member id 1"),
            "{err}"
        );
        // Nothing written: the first row's country is not in the ledger either.
        assert!(s.member(cg_model::MemberId(1)).unwrap().is_none());
    });
}

#[test]
fn an_epoch_number_is_not_a_time() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("consent.jsonl");
    std::fs::write(
        &path,
        "{\"member_id\":1,\"purpose\":\"genai_training\",\"granted\":false,\"ts\":1796}\n",
    )
    .unwrap();
    each_backend(|s| {
        let err = import_file(s, &path, &NoProgress).unwrap_err().to_string();
        assert!(
            err.contains("consent.jsonl") && err.contains("`ts`"),
            "{err}"
        );
        assert_eq!(s.stats().unwrap().events, 0);
    });
}

#[test]
fn facts_as_of_equal_member_facts_for_every_member() {
    let (dir, summary) = cg_test_support::small_corpus(600, 100, cg_io::Format::Parquet);
    each_backend(|s| {
        for t in &summary.tables[..5] {
            import_file(s, &t.path, &NoProgress).unwrap();
        }
        let purpose = Purpose::genai_training();
        let as_of = instant("2025-12-01");
        let all = s.facts_as_of(&purpose, as_of).unwrap();
        assert_eq!(all.members.values().filter(|m| m.recorded).count(), 600);
        assert!(all.members.values().any(|m| m.facts.erased_at().is_some()));
        assert!(all.members.values().any(|m| !m.facts.residences.is_empty()));
        assert!(all.members.values().any(|m| m.facts.notice_at.is_some()));
        for (id, m) in &all.members {
            let one = s.member_facts(MemberId(*id), &purpose, as_of).unwrap();
            if m.recorded {
                assert_eq!(one.as_ref(), Some(&m.facts), "member {id}");
            } else {
                assert_eq!(one, None, "member {id} has no row");
            }
        }
        assert_streams_its_snapshot(s, &purpose, as_of);
        // A caller's error stops the stream and is returned; the store stays usable.
        let mut seen = 0;
        let err = s
            .facts_by_member(&purpose, as_of, &mut |_, _| {
                seen += 1;
                if seen == 10 {
                    return Err(LedgerError::Log("stop here".into()));
                }
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("stop here"), "{err}");
        assert_eq!(seen, 10);
        assert_streams_its_snapshot(s, &purpose, as_of);
        // Events after the cut-off are not in the snapshot.
        assert_streams_its_snapshot(s, &purpose, instant("2000-01-01"));
        let early = s.facts_as_of(&purpose, instant("2000-01-01")).unwrap();
        assert_eq!(early.events, 0);
        assert!(
            early
                .members
                .values()
                .all(|m| m.facts.consent.explicit.is_none())
        );
    });
    drop(dir);
}

/// `Store::facts_by_member` hands out every member `Store::facts_as_of` holds, in ascending
/// id order, with the same facts, and the same counts.
fn assert_streams_its_snapshot(s: &mut dyn Store, purpose: &Purpose, as_of: Timestamp) {
    let all = s.facts_as_of(purpose, as_of).unwrap();
    let mut streamed = Vec::new();
    let totals = s
        .facts_by_member(purpose, as_of, &mut |id, m| {
            streamed.push((id, m));
            Ok(())
        })
        .unwrap();
    let held: Vec<_> = all.members.into_iter().collect();
    assert_eq!(streamed.len(), held.len(), "on {}", s.backend());
    for (a, b) in streamed.iter().zip(&held) {
        assert_eq!(a, b, "as of {as_of} for {purpose} on {}", s.backend());
    }
    assert_eq!(totals.members, held.len() as u64);
    assert_eq!(totals.events, all.events);
    assert_eq!(totals.ignored_purposes, all.ignored_purposes);
}

/// A check reads only the events that decide (`Store::deciding_events`); folding them must
/// give what folding the whole history gives, whatever the order of explicit choices, GPC
/// signals ("granted" GPC events included), other purposes and equal timestamps.
#[test]
fn the_deciding_events_fold_like_the_whole_history() {
    let purpose = Purpose::genai_training();
    let other = Purpose::new("marketing_email").unwrap();
    each_backend(|s| {
        let mut members = Vec::new();
        for m in 0..40i64 {
            members.push(Ok(cg_ledger::Record::Member(cg_ledger::MemberRecord {
                member_id: MemberId(m),
                country: Some("DE".into()),
                birth_date: None,
                created_at: None,
                closed_at: None,
                display_name: None,
                handle: None,
            })));
        }
        // Residences, notices and erasures for some, so the batch read has each kind of row.
        for m in 0..40i64 {
            if m % 2 == 0 {
                members.push(Ok(cg_ledger::Record::Residence(cg_ledger::Residence {
                    member_id: MemberId(m),
                    country: Some("FR".into()),
                    valid_from: instant("2025-01-03"),
                })));
            }
            if m % 3 == 0 {
                members.push(Ok(cg_ledger::Record::Notice(cg_ledger::Notice {
                    member_id: MemberId(m),
                    notice_version: "2024-09".into(),
                    delivered_at: instant("2025-01-02"),
                })));
            }
            if m % 7 == 0 {
                members.push(Ok(cg_ledger::Record::Erasure(cg_ledger::Erasure {
                    member_id: MemberId(m),
                    ts: instant("2025-01-04"),
                })));
            }
        }
        s.import(&mut members.into_iter(), &NoProgress).unwrap();
        // A small deterministic generator: events on few distinct days, so times tie.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut events = Vec::new();
        for _ in 0..600 {
            let m = next(40) as i64;
            let day = format!("2025-01-{:02}", 1 + next(6));
            let mut e = NewEvent::new(
                MemberId(m),
                if next(4) == 0 {
                    other.clone()
                } else {
                    purpose.clone()
                },
                next(2) == 0,
                instant(&day),
            );
            if next(3) == 0 {
                e.event.source = cg_model::consent::ConsentSource::Gpc;
            }
            events.push(e);
        }
        for chunk in events.chunks(7) {
            s.append(chunk).unwrap();
        }
        for as_of in [
            "2024-12-31",
            "2025-01-02",
            "2025-01-03T12:00:00Z",
            "2025-01-04",
            "2025-02-01",
        ] {
            let as_of = instant(as_of);
            for p in [&purpose, &other] {
                assert_streams_its_snapshot(s, p, as_of);
                let all = s.facts_as_of(p, as_of).unwrap();
                for m in 0..40i64 {
                    let one = s.member_facts(MemberId(m), p, as_of).unwrap().unwrap();
                    assert_eq!(
                        Some(&one),
                        all.members.get(&m).map(|x| &x.facts),
                        "member {m} as of {as_of} for {p} on {}",
                        s.backend()
                    );
                    assert!(s.deciding_events(MemberId(m), p, as_of).unwrap().len() <= 3);
                }
                // A batch reads the same facts: every member, one unknown, one named twice.
                let mut ids: Vec<MemberId> = (0..40).map(MemberId).collect();
                ids.extend([MemberId(1_000), MemberId(3), MemberId(3)]);
                let one_by_one: Vec<_> = ids
                    .iter()
                    .map(|m| s.member_facts(*m, p, as_of).unwrap())
                    .collect();
                assert_eq!(
                    s.members_facts(&ids, p, as_of).unwrap(),
                    one_by_one,
                    "as of {as_of} for {p} on {}",
                    s.backend()
                );
                assert_eq!(one_by_one[40], None);
            }
        }
    });
}

#[test]
fn a_member_upsert_keeps_omitted_facts_and_the_earliest_closure() {
    each_backend(|s| {
        let row = |country: Option<&str>, closed: Option<&str>| {
            Ok(cg_ledger::Record::Member(cg_ledger::MemberRecord {
                member_id: MemberId(7),
                country: country.map(str::to_owned),
                birth_date: None,
                created_at: None,
                closed_at: closed.map(instant),
                display_name: None,
                handle: None,
            }))
        };
        s.import(
            &mut [row(Some("FR"), Some("2025-01-01"))].into_iter(),
            &NoProgress,
        )
        .unwrap();
        s.import(
            &mut [row(None, None), row(Some("DE"), Some("2026-01-01"))].into_iter(),
            &NoProgress,
        )
        .unwrap();
        let r = s.member(MemberId(7)).unwrap().unwrap().record.unwrap();
        assert_eq!(r.country.as_deref(), Some("DE"));
        assert_eq!(
            r.closed_at,
            Some(instant("2025-01-01")),
            "a closure is never undone"
        );
    });
}

#[test]
fn stamped_appends_never_go_back_in_time() {
    each_backend(|s| {
        s.append(&[ev(9, true, "2030-01-01")]).unwrap();
        let stored = s.append_stamped(&[ev(9, false, "2025-01-01")]).unwrap();
        assert_eq!(
            stored[0].event.ts.micros(),
            instant("2030-01-01").micros() + 1
        );
        // Another member is not affected; imports and plain appends keep their times.
        let other = s.append_stamped(&[ev(10, false, "2025-01-01")]).unwrap();
        assert_eq!(other[0].event.ts, instant("2025-01-01"));
        let (state, _) = s
            .state_at(
                MemberId(9),
                &Purpose::genai_training(),
                instant("2031-01-01"),
            )
            .unwrap();
        assert_eq!(state.granted(true), Some(false));
    });
}

#[test]
fn policy_activations_are_recorded_in_order() {
    each_backend(|s| {
        assert!(s.policy_activation_latest().unwrap().is_none());
        let before = s.log_leaf_hashes().unwrap().len() as u64;
        for (i, name) in ["timeline", "li-2024-09"].into_iter().enumerate() {
            let index = s
                .policy_activation_record(&cg_ledger::PolicyActivation {
                    activated_at: instant("2026-01-01"),
                    actor: Some("admin-token".into()),
                    name: name.into(),
                    hash: format!("hash-of-{name}"),
                    recipe: "{}".into(),
                    accepted_widening: (i == 1).then(|| "resuming after notice".to_owned()),
                })
                .unwrap();
            // Each activation is a log entry, appended in the same transaction.
            assert_eq!(index, before + i as u64);
        }
        let mut logged = Vec::new();
        s.log_scan(before, &mut |e| {
            logged.push(cg_proof::leaves::Entry::decode(&e.data).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            logged,
            [
                cg_proof::leaves::Entry::PolicyActivation {
                    policy_hash: "hash-of-timeline".into(),
                    accepted_widening: None,
                },
                cg_proof::leaves::Entry::PolicyActivation {
                    policy_hash: "hash-of-li-2024-09".into(),
                    accepted_widening: Some("resuming after notice".into()),
                },
            ]
        );
        let bad = s.policy_activation_record(&cg_ledger::PolicyActivation {
            activated_at: instant("2026-01-01"),
            actor: None,
            name: "x".into(),
            hash: "two words".into(),
            recipe: "{}".into(),
            accepted_widening: None,
        });
        assert!(bad.is_err(), "a hash that cannot be logged is refused");
        let latest = s.policy_activation_latest().unwrap().unwrap();
        assert_eq!(
            (latest.name.as_str(), latest.actor.as_deref()),
            ("li-2024-09", Some("admin-token"))
        );
    });
}
