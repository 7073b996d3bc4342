"""A first flow, written the way Prefect's tutorials write flows — only the import line differs.

Run it::

    uv run python examples/first_flow.py                 # embedded: recorded under ~/.headrace
    HEADRACE_API_URL=http://127.0.0.1:4200/api uv run python examples/first_flow.py

It fetches (simulated) statistics for a few repositories concurrently, retries the flaky fetches, caches
each repository's numbers for an hour, and logs a summary through the run logger.
"""

from datetime import timedelta

from headrace import flow, get_run_logger, task
from headrace.tasks import task_input_hash

STARS = {"headrace/headrace": 1234, "pallets/flask": 67000, "encode/httpx": 13000}
_first_attempts: set[str] = set()


@task(retries=3, retry_delay_seconds=0.2, cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
def get_stars(repo: str) -> int:
    """Ask the (simulated) API for a repository's stars; its first answer for each repository is an error."""
    if repo not in _first_attempts:
        _first_attempts.add(repo)
        raise ConnectionError(f"the API did not answer for {repo}")
    return STARS[repo]


@task
def get_contributors(repo: str, per_page: int) -> list[str]:
    return [f"{repo.partition('/')[0]}-dev-{i}" for i in range(min(per_page, 3))]


@task
def summarize(stars: list[int], contributors: list[list[str]]) -> dict[str, int]:
    logger = get_run_logger()
    logger.info("Summarizing %d repositories", len(stars))
    return {"stars": sum(stars), "contributors": sum(len(people) for people in contributors)}


@flow(name="Repo Info", log_prints=True)
def repo_info(repos: list[str] = ["headrace/headrace", "pallets/flask", "encode/httpx"]) -> dict[str, int]:  # noqa: B006 - the tutorials' style
    """Given a list of GitHub repositories, report their stars and contributors."""
    logger = get_run_logger()
    stars = get_stars.map(repos)
    contributors = [get_contributors.submit(repo, per_page=100) for repo in repos]
    summary = summarize.submit(stars, contributors).result()
    for repo, count in zip(repos, stars.result(), strict=True):
        print(f"{repo}: {count} stars")
    logger.info("Total: %(stars)d stars, %(contributors)d contributors", summary)
    return summary


if __name__ == "__main__":
    repo_info()
