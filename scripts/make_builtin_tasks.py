#!/usr/bin/env python3
"""Generate the project's built-in in-context-learning task set.

Writes ``interp/tasks/builtin/<name>.json`` for each task below.  Each file
holds a JSON list of ``{"input": str, "output": str}`` objects (the same
layout as the "function vectors" task suite), but every word list here was
written for this project; nothing is copied from another suite.

Standard library only, deterministic output.  Rerun to regenerate:

    python scripts/make_builtin_tasks.py

The script validates every task before writing anything and exits non-zero
if a check fails.
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "interp" / "tasks" / "builtin"

MIN_PAIRS = 100

# ---------------------------------------------------------------------------
# Word lists (all written inline)
# ---------------------------------------------------------------------------

# Common English words, lowercase, letters only.  Used by `capitalize`,
# `next_letter` (words starting with "z" dropped) and `lowercase_first_letter`.
COMMON_WORDS = """
apple anchor arrow autumn avenue basket bridge butter blanket bottle
candle carpet castle cherry circle cloud coffee cotton doctor dragon
dinner desert dollar eagle earth engine evening elbow falcon feather
forest garden guitar ginger hammer harbor helmet honey island jacket
jungle kettle kitten ladder lemon letter market meadow mirror monkey
needle number ocean orange oyster paper pencil pepper pillow planet
pocket rabbit river rocket saddle silver spider summer sunset table
tiger ticket tomato tunnel umbrella valley velvet village violin wagon
window winter yellow zebra
acorn badge cabin daisy ember fabric garlic hollow igloo jelly kernel
lantern magnet napkin olive parrot quarter quiet ribbon salmon thunder
uncle vessel walnut yogurt zipper beacon canyon dolphin echo fossil
glacier harvest insect jasmine koala lobster marble nectar orbit puzzle
quilt raven shadow timber unicorn vapor whistle yarn zenith
bucket copper drum falcon goat hat ink jam kite lamp mango nest owl
pear queen rope sock tent urn vase wolf yacht zone
book chair desk door floor glass horse house king moon music night
party road school ship shoe song star stone street sugar train water
wheel wind wood world year youth
""".split()

# present -> simple past.  Verbs with two accepted past forms in common use
# (e.g. dream/dreamt, learn/learnt, dive/dove, hang/hanged, light/lit,
# fit/fitted, travel/travelled) are deliberately left out.
PRESENT_PAST_IRREGULAR = {
    "arise": "arose",
    "awake": "awoke",
    "bear": "bore",
    "become": "became",
    "begin": "began",
    "bend": "bent",
    "bind": "bound",
    "bite": "bit",
    "bleed": "bled",
    "blow": "blew",
    "break": "broke",
    "bring": "brought",
    "build": "built",
    "buy": "bought",
    "catch": "caught",
    "choose": "chose",
    "cling": "clung",
    "come": "came",
    "cost": "cost",
    "creep": "crept",
    "cut": "cut",
    "deal": "dealt",
    "dig": "dug",
    "do": "did",
    "draw": "drew",
    "drink": "drank",
    "drive": "drove",
    "eat": "ate",
    "fall": "fell",
    "feed": "fed",
    "feel": "felt",
    "fight": "fought",
    "find": "found",
    "flee": "fled",
    "fling": "flung",
    "fly": "flew",
    "forbid": "forbade",
    "forget": "forgot",
    "forgive": "forgave",
    "freeze": "froze",
    "get": "got",
    "give": "gave",
    "go": "went",
    "grind": "ground",
    "grow": "grew",
    "have": "had",
    "hear": "heard",
    "hide": "hid",
    "hit": "hit",
    "hold": "held",
    "hurt": "hurt",
    "keep": "kept",
    "know": "knew",
    "lay": "laid",
    "lead": "led",
    "leave": "left",
    "lend": "lent",
    "let": "let",
    "lose": "lost",
    "make": "made",
    "mean": "meant",
    "meet": "met",
    "overcome": "overcame",
    "pay": "paid",
    "put": "put",
    "quit": "quit",
    "read": "read",
    "ride": "rode",
    "ring": "rang",
    "rise": "rose",
    "run": "ran",
    "say": "said",
    "see": "saw",
    "seek": "sought",
    "sell": "sold",
    "send": "sent",
    "set": "set",
    "shake": "shook",
    "shut": "shut",
    "sing": "sang",
    "sit": "sat",
    "sleep": "slept",
    "slide": "slid",
    "speak": "spoke",
    "spend": "spent",
    "spin": "spun",
    "spread": "spread",
    "stand": "stood",
    "steal": "stole",
    "stick": "stuck",
    "sting": "stung",
    "strike": "struck",
    "swear": "swore",
    "sweep": "swept",
    "swim": "swam",
    "swing": "swung",
    "take": "took",
    "teach": "taught",
    "tear": "tore",
    "tell": "told",
    "think": "thought",
    "throw": "threw",
    "understand": "understood",
    "wake": "woke",
    "wear": "wore",
    "weep": "wept",
    "win": "won",
    "withdraw": "withdrew",
    "write": "wrote",
}

PRESENT_PAST_REGULAR = {
    "admit": "admitted",
    "agree": "agreed",
    "allow": "allowed",
    "answer": "answered",
    "apply": "applied",
    "arrive": "arrived",
    "ask": "asked",
    "beg": "begged",
    "believe": "believed",
    "borrow": "borrowed",
    "call": "called",
    "carry": "carried",
    "change": "changed",
    "clap": "clapped",
    "clean": "cleaned",
    "climb": "climbed",
    "close": "closed",
    "cook": "cooked",
    "count": "counted",
    "cry": "cried",
    "dance": "danced",
    "decide": "decided",
    "deny": "denied",
    "drop": "dropped",
    "enjoy": "enjoyed",
    "explain": "explained",
    "fill": "filled",
    "finish": "finished",
    "fix": "fixed",
    "follow": "followed",
    "help": "helped",
    "hope": "hoped",
    "hop": "hopped",
    "hug": "hugged",
    "hurry": "hurried",
    "invite": "invited",
    "jog": "jogged",
    "jump": "jumped",
    "kick": "kicked",
    "kiss": "kissed",
    "knock": "knocked",
    "laugh": "laughed",
    "like": "liked",
    "listen": "listened",
    "live": "lived",
    "look": "looked",
    "love": "loved",
    "miss": "missed",
    "mix": "mixed",
    "move": "moved",
    "need": "needed",
    "obey": "obeyed",
    "occur": "occurred",
    "open": "opened",
    "paint": "painted",
    "pass": "passed",
    "permit": "permitted",
    "plan": "planned",
    "play": "played",
    "point": "pointed",
    "prefer": "preferred",
    "pull": "pulled",
    "push": "pushed",
    "rain": "rained",
    "refer": "referred",
    "relax": "relaxed",
    "remember": "remembered",
    "reply": "replied",
    "rob": "robbed",
    "shop": "shopped",
    "smile": "smiled",
    "start": "started",
    "stay": "stayed",
    "stop": "stopped",
    "study": "studied",
    "talk": "talked",
    "touch": "touched",
    "try": "tried",
    "use": "used",
    "visit": "visited",
    "wait": "waited",
    "walk": "walked",
    "want": "wanted",
    "wash": "washed",
    "watch": "watched",
    "work": "worked",
    "worry": "worried",
}

# singular -> plural.  Nouns with two plurals in common use (cactus, octopus,
# scarf, hoof, fish, person, index, mosquito, volcano, ...) are left out.
SINGULAR_PLURAL = {
    # irregular / unchanged
    "child": "children",
    "deer": "deer",
    "foot": "feet",
    "goose": "geese",
    "man": "men",
    "moose": "moose",
    "mouse": "mice",
    "ox": "oxen",
    "sheep": "sheep",
    "tooth": "teeth",
    "woman": "women",
    "series": "series",
    "species": "species",
    "aircraft": "aircraft",
    # classical
    "analysis": "analyses",
    "axis": "axes",
    "bacterium": "bacteria",
    "basis": "bases",
    "crisis": "crises",
    "criterion": "criteria",
    "diagnosis": "diagnoses",
    "hypothesis": "hypotheses",
    "oasis": "oases",
    "phenomenon": "phenomena",
    "stimulus": "stimuli",
    "thesis": "theses",
    # -f / -fe -> -ves
    "calf": "calves",
    "half": "halves",
    "knife": "knives",
    "leaf": "leaves",
    "life": "lives",
    "loaf": "loaves",
    "shelf": "shelves",
    "thief": "thieves",
    "wife": "wives",
    "wolf": "wolves",
    # -f kept
    "belief": "beliefs",
    "chef": "chefs",
    "chief": "chiefs",
    "cliff": "cliffs",
    "proof": "proofs",
    "roof": "roofs",
    # -o
    "echo": "echoes",
    "hero": "heroes",
    "potato": "potatoes",
    "tomato": "tomatoes",
    "veto": "vetoes",
    "kangaroo": "kangaroos",
    "photo": "photos",
    "piano": "pianos",
    "radio": "radios",
    "video": "videos",
    "zoo": "zoos",
    # -y
    "baby": "babies",
    "berry": "berries",
    "cherry": "cherries",
    "city": "cities",
    "country": "countries",
    "family": "families",
    "fly": "flies",
    "lady": "ladies",
    "party": "parties",
    "puppy": "puppies",
    "spy": "spies",
    "story": "stories",
    "boy": "boys",
    "chimney": "chimneys",
    "day": "days",
    "journey": "journeys",
    "key": "keys",
    "monkey": "monkeys",
    "toy": "toys",
    "valley": "valleys",
    # sibilants
    "bench": "benches",
    "box": "boxes",
    "brush": "brushes",
    "buzz": "buzzes",
    "church": "churches",
    "class": "classes",
    "dish": "dishes",
    "fox": "foxes",
    "glass": "glasses",
    "kiss": "kisses",
    "lunch": "lunches",
    "quiz": "quizzes",
    "tax": "taxes",
    "watch": "watches",
    "wish": "wishes",
    "witch": "witches",
    "beach": "beaches",
    "bush": "bushes",
    "dress": "dresses",
    "address": "addresses",
    # plain -s
    "apple": "apples",
    "bird": "birds",
    "book": "books",
    "car": "cars",
    "cat": "cats",
    "chair": "chairs",
    "cloud": "clouds",
    "cup": "cups",
    "desk": "desks",
    "dog": "dogs",
    "door": "doors",
    "egg": "eggs",
    "flower": "flowers",
    "garden": "gardens",
    "hat": "hats",
    "horse": "horses",
    "house": "houses",
    "island": "islands",
    "lamp": "lamps",
    "letter": "letters",
    "map": "maps",
    "mountain": "mountains",
    "pen": "pens",
    "pencil": "pencils",
    "river": "rivers",
    "road": "roads",
    "school": "schools",
    "ship": "ships",
    "shoe": "shoes",
    "song": "songs",
    "star": "stars",
    "table": "tables",
    "tree": "trees",
    "window": "windows",
}

# country -> capital.  Countries whose capital is disputed, split between
# several cities, recently moved, or whose name is ambiguous are left out
# (e.g. Israel, Bolivia, South Africa, the Netherlands, Sri Lanka, Benin,
# Côte d'Ivoire, Tanzania, Burundi, Kazakhstan, Indonesia, Eswatini,
# Myanmar, Georgia, and city-states named like their capital).
COUNTRY_CAPITAL = {
    # Europe
    "Albania": "Tirana",
    "Andorra": "Andorra la Vella",
    "Austria": "Vienna",
    "Belarus": "Minsk",
    "Belgium": "Brussels",
    "Bosnia and Herzegovina": "Sarajevo",
    "Bulgaria": "Sofia",
    "Croatia": "Zagreb",
    "Cyprus": "Nicosia",
    "Czech Republic": "Prague",
    "Denmark": "Copenhagen",
    "Estonia": "Tallinn",
    "Finland": "Helsinki",
    "France": "Paris",
    "Germany": "Berlin",
    "Greece": "Athens",
    "Hungary": "Budapest",
    "Iceland": "Reykjavík",
    "Ireland": "Dublin",
    "Italy": "Rome",
    "Latvia": "Riga",
    "Liechtenstein": "Vaduz",
    "Lithuania": "Vilnius",
    "Malta": "Valletta",
    "Montenegro": "Podgorica",
    "North Macedonia": "Skopje",
    "Norway": "Oslo",
    "Poland": "Warsaw",
    "Portugal": "Lisbon",
    "Romania": "Bucharest",
    "Russia": "Moscow",
    "Serbia": "Belgrade",
    "Slovakia": "Bratislava",
    "Slovenia": "Ljubljana",
    "Spain": "Madrid",
    "Sweden": "Stockholm",
    "Switzerland": "Bern",
    "Ukraine": "Kyiv",
    "United Kingdom": "London",
    # Asia and the Middle East
    "Afghanistan": "Kabul",
    "Armenia": "Yerevan",
    "Azerbaijan": "Baku",
    "Bahrain": "Manama",
    "Bangladesh": "Dhaka",
    "Bhutan": "Thimphu",
    "Cambodia": "Phnom Penh",
    "China": "Beijing",
    "India": "New Delhi",
    "Iran": "Tehran",
    "Iraq": "Baghdad",
    "Japan": "Tokyo",
    "Jordan": "Amman",
    "Kuwait": "Kuwait City",
    "Kyrgyzstan": "Bishkek",
    "Laos": "Vientiane",
    "Lebanon": "Beirut",
    "Malaysia": "Kuala Lumpur",
    "Mongolia": "Ulaanbaatar",
    "Nepal": "Kathmandu",
    "North Korea": "Pyongyang",
    "Oman": "Muscat",
    "Pakistan": "Islamabad",
    "Philippines": "Manila",
    "Qatar": "Doha",
    "Saudi Arabia": "Riyadh",
    "South Korea": "Seoul",
    "Syria": "Damascus",
    "Tajikistan": "Dushanbe",
    "Thailand": "Bangkok",
    "Turkey": "Ankara",
    "Turkmenistan": "Ashgabat",
    "United Arab Emirates": "Abu Dhabi",
    "Uzbekistan": "Tashkent",
    "Vietnam": "Hanoi",
    # Africa
    "Algeria": "Algiers",
    "Angola": "Luanda",
    "Botswana": "Gaborone",
    "Burkina Faso": "Ouagadougou",
    "Cameroon": "Yaoundé",
    "Central African Republic": "Bangui",
    "Chad": "N'Djamena",
    "Democratic Republic of the Congo": "Kinshasa",
    "Egypt": "Cairo",
    "Eritrea": "Asmara",
    "Ethiopia": "Addis Ababa",
    "Gabon": "Libreville",
    "Ghana": "Accra",
    "Guinea": "Conakry",
    "Kenya": "Nairobi",
    "Lesotho": "Maseru",
    "Liberia": "Monrovia",
    "Libya": "Tripoli",
    "Madagascar": "Antananarivo",
    "Malawi": "Lilongwe",
    "Mali": "Bamako",
    "Mauritania": "Nouakchott",
    "Morocco": "Rabat",
    "Mozambique": "Maputo",
    "Namibia": "Windhoek",
    "Niger": "Niamey",
    "Nigeria": "Abuja",
    "Republic of the Congo": "Brazzaville",
    "Rwanda": "Kigali",
    "Senegal": "Dakar",
    "Sierra Leone": "Freetown",
    "Somalia": "Mogadishu",
    "South Sudan": "Juba",
    "Sudan": "Khartoum",
    "Togo": "Lomé",
    "Tunisia": "Tunis",
    "Uganda": "Kampala",
    "Zambia": "Lusaka",
    "Zimbabwe": "Harare",
    # Americas
    "Argentina": "Buenos Aires",
    "Bahamas": "Nassau",
    "Barbados": "Bridgetown",
    "Brazil": "Brasília",
    "Canada": "Ottawa",
    "Chile": "Santiago",
    "Colombia": "Bogotá",
    "Costa Rica": "San José",
    "Cuba": "Havana",
    "Dominican Republic": "Santo Domingo",
    "Ecuador": "Quito",
    "El Salvador": "San Salvador",
    "Guatemala": "Guatemala City",
    "Guyana": "Georgetown",
    "Haiti": "Port-au-Prince",
    "Honduras": "Tegucigalpa",
    "Jamaica": "Kingston",
    "Mexico": "Mexico City",
    "Nicaragua": "Managua",
    "Panama": "Panama City",
    "Paraguay": "Asunción",
    "Peru": "Lima",
    "Suriname": "Paramaribo",
    "Trinidad and Tobago": "Port of Spain",
    "United States": "Washington, D.C.",
    "Uruguay": "Montevideo",
    "Venezuela": "Caracas",
    # Oceania
    "Australia": "Canberra",
    "Fiji": "Suva",
    "New Zealand": "Wellington",
    "Papua New Guinea": "Port Moresby",
    "Samoa": "Apia",
}

# adjective -> common antonym.  Only pairs with one clearly dominant answer;
# words like right (wrong/left), light (dark/heavy), hard (soft/easy),
# old (new/young), short (long/tall) are used only in the direction that is
# unambiguous, or not at all.
ANTONYM = {
    "absent": "present",
    "present": "absent",
    "accurate": "inaccurate",
    "inaccurate": "accurate",
    "alive": "dead",
    "dead": "alive",
    "ancient": "modern",
    "modern": "ancient",
    "artificial": "natural",
    "natural": "artificial",
    "asleep": "awake",
    "awake": "asleep",
    "bad": "good",
    "good": "bad",
    "backward": "forward",
    "forward": "backward",
    "brave": "cowardly",
    "cowardly": "brave",
    "cheap": "expensive",
    "expensive": "cheap",
    "clean": "dirty",
    "dirty": "clean",
    "cold": "hot",
    "hot": "cold",
    "comfortable": "uncomfortable",
    "uncomfortable": "comfortable",
    "complete": "incomplete",
    "incomplete": "complete",
    "concave": "convex",
    "convex": "concave",
    "correct": "incorrect",
    "incorrect": "correct",
    "certain": "uncertain",
    "uncertain": "certain",
    "rare": "common",
    "dangerous": "safe",
    "safe": "dangerous",
    "deep": "shallow",
    "shallow": "deep",
    "dependent": "independent",
    "independent": "dependent",
    "difficult": "easy",
    "direct": "indirect",
    "indirect": "direct",
    "dry": "wet",
    "wet": "dry",
    "early": "late",
    "late": "early",
    "eastern": "western",
    "western": "eastern",
    "northern": "southern",
    "southern": "northern",
    "empty": "full",
    "full": "empty",
    "odd": "even",
    "external": "internal",
    "internal": "external",
    "fair": "unfair",
    "unfair": "fair",
    "false": "true",
    "true": "false",
    "fast": "slow",
    "slow": "fast",
    "female": "male",
    "male": "female",
    "first": "last",
    "last": "first",
    "foolish": "wise",
    "wise": "foolish",
    "formal": "informal",
    "informal": "formal",
    "guilty": "innocent",
    "innocent": "guilty",
    "happy": "sad",
    "sad": "happy",
    "heavy": "light",
    "high": "low",
    "low": "high",
    "honest": "dishonest",
    "dishonest": "honest",
    "horizontal": "vertical",
    "vertical": "horizontal",
    "hollow": "solid",
    "illegal": "legal",
    "legal": "illegal",
    "illiterate": "literate",
    "literate": "illiterate",
    "illogical": "logical",
    "logical": "illogical",
    "immature": "mature",
    "mature": "immature",
    "immortal": "mortal",
    "mortal": "immortal",
    "impatient": "patient",
    "patient": "impatient",
    "impossible": "possible",
    "possible": "impossible",
    "inferior": "superior",
    "superior": "inferior",
    "inner": "outer",
    "outer": "inner",
    "insane": "sane",
    "sane": "insane",
    "invisible": "visible",
    "visible": "invisible",
    "irregular": "regular",
    "regular": "irregular",
    "irrelevant": "relevant",
    "relevant": "irrelevant",
    "irresponsible": "responsible",
    "responsible": "irresponsible",
    "junior": "senior",
    "senior": "junior",
    "known": "unknown",
    "unknown": "known",
    "likely": "unlikely",
    "unlikely": "likely",
    "long": "short",
    "loose": "tight",
    "tight": "loose",
    "quiet": "loud",
    "upper": "lower",
    "lucky": "unlucky",
    "unlucky": "lucky",
    "major": "minor",
    "minor": "major",
    "maximum": "minimum",
    "minimum": "maximum",
    "narrow": "wide",
    "wide": "narrow",
    "negative": "positive",
    "positive": "negative",
    "optimistic": "pessimistic",
    "pessimistic": "optimistic",
    "passive": "active",
    "permanent": "temporary",
    "temporary": "permanent",
    "plural": "singular",
    "singular": "plural",
    "polite": "rude",
    "rude": "polite",
    "poor": "rich",
    "rich": "poor",
    "private": "public",
    "public": "private",
    "rough": "smooth",
    "smooth": "rough",
    "rural": "urban",
    "urban": "rural",
    "sober": "drunk",
    "drunk": "sober",
    "sour": "sweet",
    "strong": "weak",
    "weak": "strong",
    "tall": "short",
    "tame": "wild",
    "wild": "tame",
    "thick": "thin",
    "usual": "unusual",
    "unusual": "usual",
    "young": "old",
}

# ---------------------------------------------------------------------------
# Number words
# ---------------------------------------------------------------------------

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
    "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = {
    2: "twenty", 3: "thirty", 4: "forty", 5: "fifty",
    6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety",
}

NUMBER_WORD_MAX = 120


def number_to_words(n: int) -> str:
    """English words for 0 <= n <= 999, US style ("one hundred twenty")."""
    if not 0 <= n <= 999:
        raise ValueError(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    hundreds, rest = divmod(n, 100)
    head = _ONES[hundreds] + " hundred"
    return head + (" " + number_to_words(rest) if rest else "")


# ---------------------------------------------------------------------------
# Task builders
# ---------------------------------------------------------------------------

def _unique(words):
    """Drop repeats, keep first occurrence order."""
    seen = set()
    out = []
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def _pairs(mapping):
    return [{"input": k, "output": v} for k, v in mapping.items()]


def build_tasks() -> dict[str, list[dict[str, str]]]:
    words = _unique(COMMON_WORDS)
    for w in words:
        if not (w.isascii() and w.isalpha() and w.islower()):
            raise SystemExit(f"COMMON_WORDS: bad word {w!r}")

    present_past = {}
    for table in (PRESENT_PAST_IRREGULAR, PRESENT_PAST_REGULAR):
        for k, v in table.items():
            if k in present_past:
                raise SystemExit(f"present_past: {k!r} listed twice")
            present_past[k] = v

    tasks = {
        "capitalize": [
            {"input": w, "output": w[0].upper() + w[1:]} for w in words
        ],
        "present_past": _pairs(present_past),
        "singular_plural": _pairs(SINGULAR_PLURAL),
        "country_capital": _pairs(COUNTRY_CAPITAL),
        "next_letter": [
            {"input": w, "output": chr(ord(w[0]) + 1).upper()}
            for w in words
            if w[0] != "z"
        ],
        "number_word": [
            {"input": str(n), "output": number_to_words(n)}
            for n in range(NUMBER_WORD_MAX + 1)
        ],
        "antonym": _pairs(ANTONYM),
        "lowercase_first_letter": [
            {"input": w.upper(), "output": w[0]} for w in words
        ],
    }
    return tasks


MIN_BY_TASK = {
    "capitalize": 150,
    "present_past": 120,
    "singular_plural": 120,
    "country_capital": 100,
    "next_letter": 150,
    "number_word": NUMBER_WORD_MAX + 1,
    "antonym": 100,
    "lowercase_first_letter": 150,
}


def validate(tasks) -> list[str]:
    errors = []
    for name, pairs in tasks.items():
        need = max(MIN_PAIRS, MIN_BY_TASK.get(name, MIN_PAIRS))
        if len(pairs) < need:
            errors.append(f"{name}: {len(pairs)} pairs, need >= {need}")
        seen = set()
        for i, p in enumerate(pairs):
            if set(p) != {"input", "output"}:
                errors.append(f"{name}[{i}]: keys {sorted(p)}")
                continue
            for key in ("input", "output"):
                v = p[key]
                if not isinstance(v, str) or not v:
                    errors.append(f"{name}[{i}].{key}: empty or not a string")
                elif v != v.strip():
                    errors.append(f"{name}[{i}].{key}: leading/trailing space {v!r}")
            if p["input"] in seen:
                errors.append(f"{name}[{i}]: duplicate input {p['input']!r}")
            seen.add(p["input"])
    # task-specific sanity checks
    for p in tasks["next_letter"]:
        if p["output"] not in string.ascii_uppercase:
            errors.append(f"next_letter: bad output {p!r}")
    for p in tasks["lowercase_first_letter"]:
        if p["output"] not in string.ascii_lowercase or not p["input"].isupper():
            errors.append(f"lowercase_first_letter: bad pair {p!r}")
    for p in tasks["antonym"]:
        if p["input"] == p["output"]:
            errors.append(f"antonym: self-pair {p!r}")
    return errors


def main() -> int:
    tasks = build_tasks()
    errors = validate(tasks)
    if errors:
        for e in errors:
            print("ERROR:", e, file=sys.stderr)
        print(f"{len(errors)} validation error(s); nothing written", file=sys.stderr)
        return 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, pairs in tasks.items():
        path = OUT_DIR / f"{name}.json"
        text = json.dumps(pairs, sort_keys=True, indent=1, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        print(f"{name}: {len(pairs)} pairs -> {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
