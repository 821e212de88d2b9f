"""The run report: HTML page, Markdown summary, and the plots they embed."""

from ops.report._report_html import ReportContext, render_markdown_summary, render_report

__all__ = ["ReportContext", "render_markdown_summary", "render_report"]
