//! Contract checks for reads: start, middle and end positions, continuing
//! from `last + 1`, record fields round-tripping, and `max_records`.

use super::*;

/// Reads from the start, the middle, at the high watermark and past it.
pub async fn read_positions(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "read-positions", 1).await?;
    let offs = call!("append", log.append(&t, 0, records(0..10)));
    let all = call!("read from the first offset", log.read(&t, 0, offs[0], 100));
    ensure!(
        offsets_of(&all) == offs,
        "read from {} returned offsets {:?}, appended {offs:?}",
        offs[0],
        offsets_of(&all)
    );
    for (i, r) in all.iter().enumerate() {
        ensure!(
            r.value == value(i),
            "record {i}: value {:?}, expected {:?}",
            r.value,
            value(i)
        );
    }
    let middle = call!("read from the middle", log.read(&t, 0, offs[4], 100));
    ensure!(
        offsets_of(&middle) == offs[4..],
        "read from {} returned {:?}, expected {:?}",
        offs[4],
        offsets_of(&middle),
        &offs[4..]
    );
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    let at = call!("read at the high watermark", log.read(&t, 0, hwm, 100));
    ensure!(
        at.is_empty(),
        "read at the high watermark {hwm} returned {} records",
        at.len()
    );
    let past = call!(
        "read past the high watermark",
        log.read(&t, 0, hwm + 10, 100)
    );
    ensure!(
        past.is_empty(),
        "read past the high watermark returned {} records",
        past.len()
    );
    Ok(())
}

/// Paging with `last.offset + 1` visits every record once, in order.
pub async fn read_continuation(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "read-continuation", 1).await?;
    let mut appended = Vec::new();
    for (lo, hi) in [(0, 3), (3, 4), (4, 15), (15, 25)] {
        appended.extend(call!("append", log.append(&t, 0, records(lo..hi))));
    }
    let got = read_all(log, &t, 0, appended[0], 7).await?;
    ensure!(
        offsets_of(&got) == appended,
        "paged read returned offsets {:?}, appended {appended:?}",
        offsets_of(&got)
    );
    ensure!(
        strictly_increasing(&offsets_of(&got)),
        "offsets not strictly increasing"
    );
    for (i, r) in got.iter().enumerate() {
        ensure!(
            r.value == value(i) && r.partition == 0,
            "record {i} came back as {r:?}"
        );
    }
    Ok(())
}

/// Keys (none, empty, binary), values, headers and timestamps survive.
pub async fn record_fields(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "record-fields", 1).await?;
    let binary: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let explicit_ts = 1_600_000_000_123;
    let sent = vec![
        ProducerRecord {
            key: None,
            value: Bytes::from_static(b"no key"),
            headers: vec![],
            timestamp_ms: Some(explicit_ts),
        },
        ProducerRecord {
            key: Some(Bytes::new()),
            value: Bytes::new(),
            headers: vec![],
            timestamp_ms: None,
        },
        ProducerRecord {
            key: Some(binary.clone()),
            value: binary.clone(),
            headers: vec![
                Header {
                    key: "trace-id".into(),
                    value: Bytes::from_static(b"abc"),
                },
                Header {
                    key: "empty".into(),
                    value: Bytes::new(),
                },
                Header {
                    key: "trace-id".into(),
                    value: Bytes::from_static(b"dup"),
                },
            ],
            timestamp_ms: None,
        },
    ];
    let before = now_ms();
    let offs = call!("append", log.append(&t, 0, sent.clone()));
    let after = now_ms();
    let got = call!("read", log.read(&t, 0, offs[0], 10));
    ensure!(
        got.len() == sent.len(),
        "read back {} records, sent {}",
        got.len(),
        sent.len()
    );
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        ensure!(
            g.key == s.key,
            "record {i}: key {:?}, sent {:?}",
            g.key,
            s.key
        );
        ensure!(
            g.value == s.value,
            "record {i}: value {:?}, sent {:?}",
            g.value,
            s.value
        );
        ensure!(
            g.headers == s.headers,
            "record {i}: headers {:?}, sent {:?}",
            g.headers,
            s.headers
        );
        match s.timestamp_ms {
            Some(ts) => ensure!(
                g.timestamp_ms == ts,
                "record {i}: explicit timestamp {ts} came back as {}",
                g.timestamp_ms
            ),
            // A second of slack for clock granularity and broker-side stamping.
            None => ensure!(
                g.timestamp_ms >= before - 1000 && g.timestamp_ms <= after + 1000,
                "record {i}: unset timestamp stamped {}, expected about now ({before}..{after})",
                g.timestamp_ms
            ),
        }
    }
    Ok(())
}

/// `max_records` bounds every read; 0 reads nothing.
pub async fn max_records(log: &dyn EventLog, prefix: &str) -> CheckResult {
    let t = topic(log, prefix, "max-records", 1).await?;
    let offs = call!("append", log.append(&t, 0, records(0..20)));
    for max in [1usize, 5, 19] {
        let got = call!("read", log.read(&t, 0, offs[0], max));
        ensure!(
            !got.is_empty() && got.len() <= max,
            "read with max_records {max} returned {} records",
            got.len()
        );
        ensure!(
            got[0].offset == offs[0],
            "read from {} started at {}",
            offs[0],
            got[0].offset
        );
    }
    let none = call!("read with max_records 0", log.read(&t, 0, offs[0], 0));
    ensure!(
        none.is_empty(),
        "read with max_records 0 returned {} records",
        none.len()
    );
    Ok(())
}

/// A caught-up reader waiting for the next offset is released by an append
/// (well before its timeout), and does not wait at all once a record is there.
pub async fn wait_for_records(log: &dyn EventLog, prefix: &str) -> CheckResult {
    const LONG: std::time::Duration = std::time::Duration::from_secs(10);
    let t = topic(log, prefix, "wait-for", 1).await?;
    let hwm = call!("high_watermark", log.high_watermark(&t, 0));
    let started = std::time::Instant::now();
    let append = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log.append(&t, 0, records(0..1)).await
    };
    let (waited, appended) = tokio::join!(log.wait_for(&t, 0, hwm, LONG), append);
    waited.map_err(|e| format!("wait_for failed: {e}"))?;
    appended.map_err(|e| format!("append failed: {e}"))?;
    ensure!(
        started.elapsed() < LONG,
        "wait_for at the high watermark was not released by an append within {LONG:?}"
    );
    let started = std::time::Instant::now();
    call!(
        "wait_for below the high watermark",
        log.wait_for(&t, 0, hwm, LONG)
    );
    ensure!(
        started.elapsed() < LONG,
        "wait_for waited although offset {hwm} exists"
    );
    let got = call!("read", log.read(&t, 0, hwm, 10));
    ensure!(
        got.len() == 1,
        "read after wait_for returned {} records",
        got.len()
    );
    Ok(())
}

/// A follower reading with `read_available` (and waiting with `wait_for`
/// when it gets nothing) sees every record once, in order, and nothing past
/// the high watermark.
pub async fn read_available_follows(log: &dyn EventLog, prefix: &str) -> CheckResult {
    const BOUND: std::time::Duration = std::time::Duration::from_secs(20);
    let t = topic(log, prefix, "read-available", 1).await?;
    let mut appended = Vec::new();
    let mut got: Vec<StoredRecord> = Vec::new();
    let mut next = 0;
    let started = std::time::Instant::now();
    for (lo, hi) in [(0, 5), (5, 6), (6, 30)] {
        appended.extend(call!("append", log.append(&t, 0, records(lo..hi))));
        while got.len() < appended.len() {
            ensure!(
                started.elapsed() < BOUND,
                "read_available returned {} of {} records within {BOUND:?}",
                got.len(),
                appended.len()
            );
            let batch = call!(
                format!("read_available(from {next})"),
                log.read_available(&t, 0, next, 4)
            );
            ensure!(batch.len() <= 4, "max_records 4, got {}", batch.len());
            if batch.is_empty() {
                call!(
                    "wait_for",
                    log.wait_for(&t, 0, next, std::time::Duration::from_millis(50))
                );
            }
            for r in batch {
                ensure!(
                    r.offset >= next,
                    "read_available from {next} returned offset {}",
                    r.offset
                );
                next = r.offset + 1;
                got.push(r);
            }
        }
    }
    ensure!(
        offsets_of(&got) == appended,
        "read_available returned offsets {:?}, appended {appended:?}",
        offsets_of(&got)
    );
    let past = call!(
        "read_available at the end",
        log.read_available(&t, 0, next, 4)
    );
    ensure!(
        past.is_empty(),
        "read_available at the high watermark returned {} records",
        past.len()
    );
    Ok(())
}
