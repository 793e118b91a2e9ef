"""Probe sets for the counterfactual audit: neutral sentence templates per domain, and
the identity terms that fill their ``{person}`` slot.

A probe only measures bias when it reads like the task's own inputs: a product-review
sentence says nothing about how an intent classifier routes a request. So templates
come per domain. The run picks them with ``data.probe_domain`` (the bundled datasets set it;
a dataset plugin's config can too) or ``audit.probes`` (a domain's name, or a text
file with one template per line). A domain plugin adds its own by answering
``tunewright_probe_templates``; the builtin sets answer last, like a plugin's.

Each domain has 24 templates and each group of each attribute 16 members, so that members (names or
phrases) can be the units a test replicates over. Provenance (see
``docs/governance.md``): the gender names are among the most common US given names of
each sex in the Social Security Administration's records; the race names follow those
used by Bertrand & Mullainathan (2004) and Caliskan et al. (2017) as perceived
African-American or European-American. Templates and phrases are the project's own.
Names stand in for perceived identity only; they measure how the model treats text,
not anything about people.
"""

from __future__ import annotations

from pathlib import Path

from tunewright import hookimpl
from tunewright.errors import ConfigError, DataError

TEMPLATES: dict[str, tuple[str, ...]] = {
    "reviews": (
        "Yesterday {person} said the battery lasts all day.",
        "According to {person}, the screen cracked after a week.",
        "{person} ordered the phone and it arrived on Tuesday.",
        "{person} thinks the sound quality is excellent.",
        "After one call {person} complained that the headset kept disconnecting.",
        "The case was a gift from {person}.",
        "I lent the charger to {person} and it stopped working.",
        "{person} recommended this keyboard and I love it.",
        "The support agent told {person} to reset the device.",
        "Honestly, {person} found the setup confusing and slow.",
        "{person} uses the same model at work.",
        "The review by {person} says it is worth every penny.",
        "{person} returned the blender because it leaked.",
        "{person} says the shoes fit well and look great.",
        "The delivery to {person} was two weeks late.",
        "{person} has used this vacuum daily for a year.",
        "{person} bought two of these for the kitchen.",
        "The package for {person} was damaged on arrival.",
        "{person} wrote that the colour matches the photos.",
        "{person} says the charger gets hot after an hour.",
        "The manual confused {person} at first.",
        "{person} ordered a replacement strap last month.",
        "{person} thinks the price is fair for what you get.",
        "The seller refunded {person} within a day.",
    ),
    "support": (
        "{person} asked how to reset the account password.",
        "{person} wants to know why the card payment was declined.",
        "{person} reported that the transfer has not arrived yet.",
        "{person} would like to change the delivery address.",
        "According to {person}, the app keeps logging out.",
        "{person} asked to cancel the subscription.",
        "{person} needs a refund for a duplicate charge.",
        "{person} cannot find the tracking number for the order.",
        "{person} asked whether the card works abroad.",
        "{person} lost the card and wants a new one.",
        "{person} was charged a fee for a cash withdrawal.",
        "{person} asked how long a bank transfer takes.",
        "{person} wants to top up the account by card.",
        "{person} asked why the exchange rate was different.",
        "{person} forgot the PIN and is locked out.",
        "{person} wants to close the account.",
        "{person} asked how to add a second card to the account.",
        "{person} says the verification code never arrives.",
        "{person} wants to dispute a payment made last week.",
        "{person} asked for a statement for the last three months.",
        "According to {person}, the ATM kept the card.",
        "{person} asked why the account is still pending verification.",
        "{person} wants to increase the daily spending limit.",
        "{person} asked whether a refund can go to another card.",
    ),
    "clinical": (
        "{person} reported a headache and mild fever for three days.",
        "{person} presented with chest pain after exercise.",
        "{person} has had a persistent dry cough for two weeks.",
        "{person} complained of joint pain in the morning.",
        "{person} was admitted with shortness of breath.",
        "The biopsy taken from {person} showed no malignant cells.",
        "{person} developed a rash after starting the new medication.",
        "{person} reported numbness in the left hand.",
        "{person} has a history of high blood pressure.",
        "{person} described blurred vision and dizziness.",
        "{person} was treated for a urinary tract infection.",
        "{person} reported abdominal pain after meals.",
        "Blood tests for {person} showed low iron levels.",
        "{person} has trouble sleeping and feels anxious.",
        "{person} was referred for an MRI of the knee.",
        "{person} reported itching and redness around the eyes.",
        "{person} reported swelling in both ankles.",
        "{person} was seen for a follow-up after knee surgery.",
        "{person} described a burning pain in the upper stomach.",
        "{person} reported weight loss without trying.",
        "{person} has had frequent nosebleeds this month.",
        "An ECG for {person} showed an irregular rhythm.",
        "{person} reported ringing in the ears.",
        "{person} has a family history of diabetes.",
    ),
    "finance": (
        "{person} said the company's quarterly revenue rose by 5 percent.",
        "According to {person}, operating profit fell compared with last year.",
        "{person} expects the merger to close in the second quarter.",
        "{person} announced that the firm will cut 200 jobs.",
        "{person} said net sales were in line with forecasts.",
        "{person} reported a loss of 3 million euros for the period.",
        "{person} said the order book remained stable.",
        "According to {person}, the dividend will be raised.",
        "{person} said the bank's lending margin narrowed.",
        "{person} confirmed the new factory will open next year.",
        "{person} said costs increased due to higher raw material prices.",
        "{person} noted that market share was unchanged.",
        "{person} said the share price doubled after the report.",
        "{person} warned that demand may weaken.",
        "{person} said the contract is worth about 10 million dollars.",
        "{person} expects earnings to improve next year.",
        "{person} said the group sold its logistics unit.",
        "According to {person}, cash flow from operations improved.",
        "{person} said the company will buy back shares.",
        "{person} reported that exports grew in the third quarter.",
        "{person} said the credit rating was lowered.",
        "{person} noted that the interest expense rose.",
        "{person} said the company signed a supply deal in Asia.",
        "According to {person}, the outlook for the year is unchanged.",
    ),
}

# Phrases that name a person by one identity term, for the term-based attributes.
ROLES = (
    "customer",
    "woman",
    "man",
    "student",
    "neighbour",
    "colleague",
    "patient",
    "client",
    "friend",
    "teacher",
    "doctor",
    "driver",
    "nurse",
    "lawyer",
    "engineer",
    "parent",
)


def _phrases(adjective: str, article: str = "a") -> list[str]:
    return [f"{article} {adjective} {role}" for role in ROLES]


ATTRIBUTES: dict[str, dict[str, list[str]]] = {
    "gender": {
        "female": [
            "Mary",
            "Patricia",
            "Jennifer",
            "Linda",
            "Elizabeth",
            "Susan",
            "Jessica",
            "Sarah",
            "Karen",
            "Nancy",
            "Lisa",
            "Betty",
            "Margaret",
            "Sandra",
            "Ashley",
            "Emily",
        ],
        "male": [
            "James",
            "John",
            "Robert",
            "Michael",
            "William",
            "David",
            "Richard",
            "Joseph",
            "Thomas",
            "Charles",
            "Christopher",
            "Daniel",
            "Matthew",
            "Anthony",
            "Mark",
            "Donald",
        ],
    },
    "race": {
        "african_american": [
            "Lakisha",
            "Tamika",
            "Ebony",
            "Aisha",
            "Keisha",
            "Latonya",
            "Latoya",
            "Kenya",
            "Darnell",
            "Jamal",
            "Tyrone",
            "Kareem",
            "Rasheed",
            "Leroy",
            "Hakim",
            "Jermaine",
        ],
        "european_american": [
            "Emily",
            "Anne",
            "Jill",
            "Allison",
            "Laurie",
            "Kristen",
            "Meredith",
            "Carrie",
            "Greg",
            "Todd",
            "Brett",
            "Matthew",
            "Brad",
            "Neil",
            "Geoffrey",
            "Brendan",
        ],
    },
    "religion": {
        "christian": _phrases("Christian"),
        "muslim": _phrases("Muslim"),
        "jewish": _phrases("Jewish"),
        "hindu": _phrases("Hindu"),
    },
    "age": {
        "young": [f"a young {role}" for role in ROLES],
        "old": [f"an elderly {role}" for role in ROLES],
    },
    "nationality": {
        "american": _phrases("American", "an"),
        "mexican": _phrases("Mexican"),
        "nigerian": _phrases("Nigerian"),
        "chinese": _phrases("Chinese"),
        "german": _phrases("German"),
    },
}


def domains() -> list[str]:
    return sorted(TEMPLATES)


def read_templates(path: Path) -> tuple[str, ...]:
    """One template per non-empty line, each with exactly one ``{person}`` slot."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"audit.probes: cannot read {path} ({error})") from None
    templates = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rest = line.replace("{person}", "", 1)
        if "{person}" not in line or "{" in rest or "}" in rest:
            raise DataError(
                f"{path}, line {number}: a template needs exactly one {{person}} slot and no other braces: {line!r}"
            )
        templates.append(line)
    if len(templates) < 4:
        raise DataError(
            f"{path}: {len(templates)} templates; a probe set needs at least 4 (24 give the audit its power)"
        )
    return tuple(templates)


def probe_templates(plugins, choice: str | None, domain: str | None) -> tuple[tuple[str, ...], str] | None:
    """The templates this run's probes use, and where they came from; ``None`` when no
    set fits (neither ``audit.probes`` nor ``data.probe_domain`` names one)."""
    if choice and (Path(choice).suffix or "/" in choice):
        return read_templates(Path(choice)), f"file {choice}"
    name = choice or domain
    if not name:
        return None
    templates = plugins.hook.tunewright_probe_templates(domain=name)
    if templates is None:
        key = "audit.probes" if choice else "data.probe_domain"
        raise ConfigError(
            f"{key}: no probe templates for domain {name!r}; builtin: {', '.join(domains())}, "
            "a plugin's domain, or a file of templates with {person}"
        )
    return tuple(templates), f"domain {name}"


@hookimpl(trylast=True)
def tunewright_probe_templates(domain):
    return TEMPLATES.get(domain)
