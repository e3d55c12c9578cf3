// Preloaded into Azurite by the test suite (tests/cloudsupport.py): while the file named by
// AZURITE_CLOCK_FILE holds a time in milliseconds since the epoch, `new Date()` and
// `Date.now()` return that time, so blobs written then get it as their Last-Modified.
// An empty file means the real clock. Azurite has no API to set Last-Modified.
"use strict";
const fs = require("fs");

const clockFile = process.env.AZURITE_CLOCK_FILE;
const RealDate = Date;

function stoppedAt() {
  if (!clockFile) return null;
  try {
    const text = fs.readFileSync(clockFile, "utf8").trim();
    return text ? Number(text) : null;
  } catch {
    return null;
  }
}

class TestClockDate extends RealDate {
  constructor(...args) {
    const stopped = args.length === 0 ? stoppedAt() : null;
    if (stopped !== null) {
      super(stopped);
    } else {
      super(...args);
    }
  }

  static now() {
    const stopped = stoppedAt();
    return stopped !== null ? stopped : RealDate.now();
  }
}

globalThis.Date = TestClockDate;
