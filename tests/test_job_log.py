"""A job's log file: log messages, stderr and progress bars each on lines of their own."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

from ciprivacy.runtime import job_log


def test_progress_bars_and_log_messages_land_on_separate_lines(tmp_path):
    log = tmp_path / "job.log"
    with job_log(log):
        for epoch in tqdm(range(3), desc="train target", mininterval=0):
            time.sleep(0.01)
            logging.getLogger("ciprivacy.test").info("epoch %d done", epoch)
        print("UserWarning: stderr goes to the log too", file=sys.stderr)
    lines = log.read_text().splitlines()
    assert "\r" not in log.read_text()
    messages = [line for line in lines if "INFO epoch" in line]
    assert len(messages) == 3 and all("train target" not in line for line in messages)
    bars = [line for line in lines if line.startswith("train target")]
    assert bars and bars[-1].startswith("train target: 100%"), lines
    assert all(line.strip() for line in lines), "no blank lines from the bar's clearing"
    assert any("stderr goes to the log too" in line for line in lines)
