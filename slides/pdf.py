"""`make slides-pdf`: the built deck as slides/build/accord.pdf, one page per slide.

    .venv/bin/python slides/pdf.py           # after `make slides`

Debian's Chromium prints the page in reveal.js's print view (`index.html?print-pdf`, which a
browser's own Print dialog uses as well). Chromium's `--print-to-pdf` flag alone would print
too early: reveal lays out the print view after the page has loaded, so a browser driven by
Playwright waits for that layout first.
"""

import sys
from pathlib import Path

SLIDES_DIR = Path(__file__).resolve().parent
PAGE = SLIDES_DIR / "build" / "index.html"
CHROMIUM = "/usr/bin/chromium"


def print_pdf(page: Path = PAGE, out: Path | None = None) -> Path:
    from playwright.sync_api import sync_playwright  # a developers' tool: imported when used

    out = out or page.with_name("accord.pdf")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            tab.goto(f"{page.resolve().as_uri()}?print-pdf")
            slides = tab.evaluate("window.Reveal && Reveal.getTotalSlides()")
            tab.wait_for_function(f"document.querySelectorAll('.pdf-page').length >= {slides}")
            tab.pdf(path=str(out), prefer_css_page_size=True, print_background=True)
        finally:
            browser.close()
    return out


def main() -> None:
    if not PAGE.exists():
        sys.exit("No slides/build/index.html: run `make slides` first.")
    print(f"Wrote {print_pdf().relative_to(SLIDES_DIR.parent)}")


if __name__ == "__main__":
    main()
