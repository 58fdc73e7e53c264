"""`opentrail backup` while the server ingests, then `opentrail restore` into a new data
dir: every event acknowledged before the backup began is there once, trail delivery
resumes without resending a file, and the digest chain still validates."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import otlib

BATCH = 100


def _opentrail(server: otlib.Server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=server.admin.access_key_id, AWS_SECRET_ACCESS_KEY=server.admin.secret_access_key)
    return subprocess.run([str(server.binary), *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_backup_taken_during_ingest_restores_every_acknowledged_event_and_resumes_delivery(
    server_factory, tmp_path
):
    settings = {
        "OPENTRAIL_DELIVERY_INTERVAL_SECS": "1",
        "OPENTRAIL_DIGEST_INTERVAL_SECS": "2",
        "OPENTRAIL_SEAL_INTERVAL_SECS": "1",
    }
    original = server_factory(extra_env=settings)
    start = otlib.iso(otlib.utcnow())
    trail_arn = original.client().create_trail(
        Name="kept", S3BucketName="backup-bucket", EnableLogFileValidation=True
    )["TrailARN"]
    original.client().start_logging(Name=trail_arn)

    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def ingest(client: int) -> None:
        number = 0
        while not stop.is_set():
            records = [
                otlib.cloudtrail_event("BackupEvent", event_time=otlib.utcnow(), event_id=f"b-{client}-{number}-{i}")
                for i in range(BATCH)
            ]
            number += 1
            answer = original.ingest_raw(json.dumps({"Records": records}).encode())
            if answer.status == 200:
                with lock:
                    acked.extend(entry["eventId"] for entry in answer.json["accepted"])

    writers = [threading.Thread(target=ingest, args=(client,), daemon=True) for client in range(3)]
    for writer in writers:
        writer.start()
    otlib.wait_for(lambda: len(acked) >= 3000, timeout=60, what="events acknowledged before the backup")
    time.sleep(3)  # a few seals and deliveries happen before the backup
    with lock:
        acknowledged_before = list(acked)
    backup_dir = tmp_path / "backup"
    made = _opentrail(original, "backup", "--data-dir", str(original.data_dir), "--to", str(backup_dir))
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert made.returncode == 0, made.stderr
    assert (backup_dir / "BACKUP.json").exists()
    manifest = json.loads((backup_dir / "BACKUP.json").read_text())
    assert manifest["lastSeq"] >= len(acknowledged_before)
    # What the bucket held when the backup copied it (the original kept delivering
    # events acknowledged after the backup, which the copy rightly lacks).
    delivered_at_backup = otlib.delivered_event_ids(backup_dir / "buckets" / "backup-bucket", "BackupEvent")
    original.stop()

    # Refused: restoring over a directory that holds something.
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep-me").write_text("x")
    refused = _opentrail(original, "restore", "--from", str(backup_dir), "--data-dir", str(occupied))
    assert refused.returncode != 0 and "not empty" in refused.stderr, refused.stderr

    restored_dir = tmp_path / "restored"
    done = _opentrail(original, "restore", "--from", str(backup_dir), "--data-dir", str(restored_dir))
    assert done.returncode == 0, done.stderr
    restored = otlib.Server(original.binary, restored_dir, extra_env=settings)
    restored.start()
    try:
        stored = restored.stored_event_ids("BackupEvent")
        assert len(stored) == len(set(stored)), "an event is stored twice"
        missing = set(acknowledged_before) - set(stored)
        assert not missing, f"{len(missing)} events acknowledged before the backup are missing"

        # Delivery resumes where the copy left off: every stored event reaches the bucket
        # once, and no file delivered before the backup is sent again.
        bucket = restored_dir / "buckets" / "backup-bucket"
        otlib.wait_for(lambda: set(stored) <= set(otlib.delivered_event_ids(bucket, "BackupEvent")), timeout=60, what="delivery to catch up")
        delivered = otlib.delivered_event_ids(bucket, "BackupEvent")
        twice = [event_id for event_id, count in delivered.items() if count > 1]
        assert not twice, f"{len(twice)} events delivered twice, e.g. {twice[:3]}"
        assert set(delivered_at_backup) <= set(delivered)

        # Every log file in the restored bucket is one the restored trail planned and
        # recorded (so a digest covers it), not one the copy holds without its record.
        def unrecorded() -> set[str]:
            in_bucket = {
                path.relative_to(bucket).as_posix()
                for path in bucket.rglob("*.json.gz")
                if "CloudTrail" in path.parts
            }
            recorded = set()
            for day_file in (restored_dir / "trails").glob("*/manifest/*.jsonl"):
                for line in day_file.read_text().splitlines():
                    try:
                        recorded.add(json.loads(line)["key"])
                    except ValueError:
                        pass  # a line being appended
            return in_bucket - recorded

        otlib.wait_for(lambda: not unrecorded(), timeout=30, what="every log file in the restored bucket in its manifest")

        # The digest chain still validates (the restored server signs with the copied keys).
        time.sleep(5)
        validated = _opentrail(
            restored, "validate", "--trail-arn", trail_arn, "--start-time", start,
            "--endpoint", restored.endpoint, "--data-dir", str(restored_dir),
        )
        assert validated.returncode == 0, validated.stdout + validated.stderr
    finally:
        restored.stop()


def test_a_backup_goes_to_s3_and_comes_back(server_factory, tmp_path):
    from test_delivery import s3_client

    moto = otlib.MotoServer().start()
    try:
        s3_client(moto.endpoint).create_bucket(Bucket="opentrail-backups")
        s3_env = {
            "OPENTRAIL_S3_ENDPOINT": moto.endpoint,
            "OPENTRAIL_S3_ACCESS_KEY_ID": "test",
            "OPENTRAIL_S3_SECRET_ACCESS_KEY": "test",
        }
        original = server_factory()
        ids = original.ingest_ok(
            [otlib.cloudtrail_event("BackupEvent", event_time=otlib.utcnow(), event_id=f"s3-{i}") for i in range(500)]
        )
        env = {**os.environ, **s3_env}
        run = lambda *args: subprocess.run(  # noqa: E731
            [str(original.binary), *args], env=env, capture_output=True, text=True, timeout=300
        )
        url = "s3://opentrail-backups/nightly/2026-12-04"
        made = run("backup", "--data-dir", str(original.data_dir), "--to", url)
        assert made.returncode == 0, made.stderr
        keys = [
            item["Key"]
            for item in s3_client(moto.endpoint).list_objects_v2(Bucket="opentrail-backups")["Contents"]
        ]
        assert "nightly/2026-12-04/BACKUP.json" in keys
        assert any(key.startswith("nightly/2026-12-04/store/segments/") or
                   key.startswith("nightly/2026-12-04/store/journal/") for key in keys), keys
        original.stop()

        missing = run("restore", "--from", "s3://opentrail-backups/nothing-here", "--data-dir", str(tmp_path / "x"))
        assert missing.returncode != 0 and "no finished backup" in missing.stderr, missing.stderr

        restored_dir = tmp_path / "from-s3"
        done = run("restore", "--from", url, "--data-dir", str(restored_dir))
        assert done.returncode == 0, done.stderr
        restored = otlib.Server(original.binary, restored_dir)
        restored.start()
        try:
            assert sorted(restored.stored_event_ids("BackupEvent")) == sorted(ids)
        finally:
            restored.stop()
    finally:
        moto.stop()
