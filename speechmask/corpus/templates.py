"""Intents, templates and slot fillers of the built-in SLU corpus (FSC/SLURP-like commands).

The intent is carried by the sentence as a whole; sensitive entities (person, phone_number,
amount, time, date, place) are short word spans whose positions go into the manifest. Transcripts
are lower-case words exactly as spoken (numbers spelled out), so ASR attacks score them directly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FIRST_NAMES = (
    "maria james aisha wei olivia mohammed sofia lucas priya daniel fatima noah elena omar grace "
    "hiroshi chloe mateo amara ethan yuki leila samuel ingrid carlos mei jonas zara victor nadia "
    "arjun hannah diego freya kwame lena tomas ana felix rosa ibrahim clara viktor amelia raj "
    "emma pedro sara ali julia marcus irene kofi nina").split()
SURNAMES = (
    "garcia smith chen patel okafor nguyen kowalski silva müller jensen haddad tanaka brown "
    "rossi ivanova mensah lopez murphy novak santos kim fischer ahmed larsen costa").split()
SURNAMES = tuple(s.replace("ü", "u") for s in SURNAMES)
CITIES = ("paris", "london", "new york", "tokyo", "nairobi", "berlin", "madrid", "toronto",
          "sydney", "mumbai", "lagos", "chicago", "boston", "dublin", "lisbon", "oslo", "cairo",
          "seoul", "lima", "denver", "seattle", "vienna", "prague", "warsaw", "athens",
          "san francisco", "mexico city", "cape town", "rio de janeiro", "amsterdam")
STREETS = ("oak", "elm", "maple", "park", "station", "church", "mill", "river", "king", "high",
           "cedar", "lake", "hill", "bridge", "market")
STREET_KINDS = ("street", "road", "avenue", "lane")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
            "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
            "twentieth").split() + ["twenty " + o for o in "first second third fourth fifth "
                                    "sixth seventh eighth ninth".split()] + ["thirtieth"]
CURRENCIES = ("dollars", "euros", "pounds")

# non-sensitive slot values
ROOMS = ("kitchen", "bedroom", "living room", "bathroom", "garage", "office", "hallway")
GENRES = ("jazz", "rock", "classical", "hip hop", "country", "reggae", "blues", "pop")
ACCOUNTS = ("savings", "checking", "joint", "business")
BILLERS = ("electricity", "phone", "water", "internet", "gas", "credit card")
TASKS = ("call the doctor", "buy milk", "water the plants", "pick up the kids",
         "take my medicine", "pay the rent", "feed the cat", "book the car service")
FOODS = ("pizza", "burger", "curry", "salad", "sandwich", "burrito", "noodle soup")
TOPICS = ("sports", "politics", "technology", "the economy", "science", "the elections", "health")
DURATIONS = ("five minutes", "ten minutes", "half an hour", "twenty minutes", "an hour",
             "ninety seconds", "three minutes")

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
        "fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """Spell 0 <= n < 10000 in English words. Hand-written: 12 lines against a new dependency
    (num2words) for the one range the templates need; it must match how TTS engines read them."""
    if not 0 <= n < 10000:
        raise ValueError(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    joiner = " and " if 0 < rest < 100 else " "
    return _ONES[n // 1000] + " thousand" + ("" if rest == 0 else joiner + number_words(rest))


# A filler returns (words before the entity, entity words); the entity words are the sensitive
# span. Slots with no entity type return ("", value) and are recorded in `slots` only.
def _person(r: random.Random) -> tuple[str, str]:
    first = r.choice(FIRST_NAMES)
    return "", first if r.random() < 0.5 else f"{first} {r.choice(SURNAMES)}"


def _phone(r: random.Random) -> tuple[str, str]:
    digits = [r.randrange(10) for _ in range(r.choice((7, 10)))]
    return "", " ".join(_ONES[d] for d in digits)


def _amount(r: random.Random) -> tuple[str, str]:
    value = r.choice((r.randrange(2, 100), r.randrange(100, 1000), r.randrange(1, 10) * 100,
                      r.randrange(1000, 5000)))
    return "", f"{number_words(value)} {r.choice(CURRENCIES)}"


def _time(r: random.Random) -> tuple[str, str]:
    hour = number_words(r.randrange(1, 13))
    minute = r.choice(("", "fifteen", "thirty", "forty five", "ten", "twenty", "o'clock"))
    suffix = r.choice(("a m", "p m", "in the morning", "in the evening", ""))
    return "", " ".join(w for w in (hour, minute, suffix) if w)


def _date(r: random.Random) -> tuple[str, str]:
    kind = r.randrange(5)
    if kind == 0:
        return "", r.choice(("today", "tomorrow", "tonight", "the day after tomorrow"))
    if kind == 1:
        return "on", r.choice(WEEKDAYS)
    if kind == 2:
        return "", f"next {r.choice(WEEKDAYS)}"
    if kind == 3:
        return "on", f"the {r.choice(ORDINALS)} of {r.choice(MONTHS)}"
    return "on", f"{r.choice(MONTHS)} {r.choice(ORDINALS)}"


def _place(r: random.Random) -> tuple[str, str]:
    return "", r.choice(CITIES)


def _address(r: random.Random) -> tuple[str, str]:
    return "", f"{number_words(r.randrange(1, 200))} {r.choice(STREETS)} {r.choice(STREET_KINDS)}"


def _choice(values: tuple[str, ...]):
    return lambda r: ("", r.choice(values))


#: slot name -> (entity type or None, filler)
SLOTS = {
    "person": ("person", _person), "phone": ("phone_number", _phone),
    "amount": ("amount", _amount), "time": ("time", _time), "date": ("date", _date),
    "place": ("place", _place), "address": ("place", _address),
    "room": (None, _choice(ROOMS)), "genre": (None, _choice(GENRES)),
    "account": (None, _choice(ACCOUNTS)), "biller": (None, _choice(BILLERS)),
    "task": (None, _choice(TASKS)), "food": (None, _choice(FOODS)),
    "topic": (None, _choice(TOPICS)), "duration": (None, _choice(DURATIONS)),
    "degrees": (None, lambda r: ("", number_words(r.randrange(16, 29)))),
}

INTENTS: dict[str, tuple[str, ...]] = {
    "alarm_set": ("wake me up at {time} {date}", "set an alarm for {time}",
                  "please set my alarm for {time} {date}", "i need to get up at {time}",
                  "alarm at {time} please"),
    "alarm_remove": ("cancel my alarm for {time}", "delete the alarm at {time} {date}",
                     "turn off all my alarms", "remove the alarm i set {date}"),
    "timer_set": ("set a timer for {duration}", "start a timer for {duration} please",
                  "count down {duration}", "time {duration} for me"),
    "transfer_money": ("send {amount} to {person}", "transfer {amount} to {person} from my "
                       "{account} account", "pay {person} {amount}",
                       "i want to wire {amount} to {person} {date}"),
    "balance_query": ("what is my {account} balance", "how much money is in my {account} account",
                      "check my bank balance", "tell me how much i have in {account}"),
    "bill_pay": ("pay my {biller} bill", "pay the {biller} bill of {amount} {date}",
                 "settle my {biller} bill for {amount}", "make sure the {biller} bill is paid "
                 "{date}"),
    "call_contact": ("call {person}", "phone {person} on their mobile", "give {person} a call",
                     "dial {phone}", "please call {phone}", "ring {person} at {phone}"),
    "message_send": ("text {person} that i am running late", "send a message to {person} saying "
                     "see you {date}", "tell {person} i am on my way",
                     "message {phone} that the meeting moved to {time}"),
    "lights_on": ("turn on the lights in the {room}", "switch the {room} lights on",
                  "lights on in the {room} please", "it is too dark in the {room}"),
    "lights_off": ("turn off the {room} lights", "switch off the lights in the {room}",
                   "kill the lights in the {room}", "lights off please"),
    "thermostat_set": ("set the temperature to {degrees} degrees", "make it {degrees} degrees in "
                       "the {room}", "warm up the {room} to {degrees} degrees"),
    "weather_query": ("what is the weather like in {place} {date}", "will it rain in {place} "
                      "{date}", "do i need an umbrella {date}", "how hot will it be in {place}"),
    "music_play": ("play some {genre} music", "put on songs by {person}",
                   "i want to listen to {genre}", "play the latest album by {person}"),
    "volume_up": ("turn the volume up", "make it louder please", "increase the volume",
                  "i can not hear it turn it up"),
    "volume_down": ("turn the volume down", "make it quieter please", "decrease the volume",
                    "that is too loud turn it down"),
    "calendar_set": ("schedule a meeting with {person} {date} at {time}", "add lunch with "
                     "{person} to my calendar {date}", "book a call with {person} at {time}",
                     "put a dentist appointment in my calendar {date} at {time}"),
    "calendar_query": ("what is on my calendar {date}", "do i have any meetings {date}",
                       "when is my next meeting with {person}", "am i free at {time} {date}"),
    "taxi_book": ("book a taxi to {place} at {time}", "get me a ride to {address}",
                  "i need a cab to {address} {date}", "call a taxi to pick me up at {address}"),
    "reminder_set": ("remind me to {task} at {time}", "set a reminder to {task} {date}",
                     "do not let me forget to {task}", "remind me {date} to {task}"),
    "food_order": ("order a {food} for delivery", "order a large {food} to {address}",
                   "get me a {food} for dinner", "i would like a {food} delivered at {time}"),
    "news_query": ("what is the latest news about {topic}", "give me the headlines",
                   "any news on {topic} today", "read me the {topic} news"),
    "directions_query": ("how do i get to {address}", "give me directions to {place}",
                         "how long does it take to drive to {place}",
                         "what is the traffic like on the way to {address}"),
}

_SLOT_RE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Sentence:
    """One filled template: the spoken text, its intent, slots and sensitive entity spans."""

    transcript: str
    intent: str
    template: str
    slots: dict
    entities: list


def fill(intent: str, template_index: int, rng: random.Random) -> Sentence:
    """Fill one template with random slot values; entity spans index `transcript.split()`."""
    template = INTENTS[intent][template_index]
    words: list[str] = []
    slots: dict[str, str] = {}
    entities: list[dict] = []
    for piece in _SLOT_RE.split(template):
        if not piece.strip():
            continue
        if piece in SLOTS:
            etype, filler = SLOTS[piece]
            before, value = filler(rng)
            words += before.split()
            start = len(words)
            words += value.split()
            slots[piece if piece not in slots else f"{piece}_2"] = value
            if etype is not None:
                entities.append({"type": etype, "text": value, "start_word": start,
                                 "end_word": len(words)})
        else:
            words += piece.split()
    return Sentence(" ".join(words), intent, f"{intent}/{template_index}", slots, entities)


def template_ids() -> list[str]:
    """Every template as 'intent/index' (for template-held-out evaluation)."""
    return [f"{i}/{k}" for i, ts in INTENTS.items() for k in range(len(ts))]
