// checkd console: the only script, for what HTML cannot do alone. Every
// page works without it.
"use strict";

// A button with data-copy="<input id>" copies that input's value.
document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button[data-copy]");
  if (!btn) {
    return;
  }
  const input = document.getElementById(btn.dataset.copy);
  const out = document.getElementById(btn.getAttribute("aria-describedby"));
  input.select();
  // The selection's copy first: it answers at once, where the clipboard
  // API may wait on a permission prompt that never comes.
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  if (!copied && navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch {
      copied = false;
    }
  }
  if (out) {
    out.textContent = copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (⌘C) to copy.";
  }
});
