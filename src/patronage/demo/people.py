"""Plausible people per market: names in their own script, unique emails, valid mobiles."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

import phonenumbers

from patronage.demo.markets import Market, weighted_choice

# A name as it is shown and its Latin spelling (for email addresses); equal for Latin names.
Name = tuple[str, str]


def _latin(*names: str) -> tuple[Name, ...]:
    return tuple((name, name) for name in names)


def _pairs(text: str) -> tuple[Name, ...]:
    """Parse "Latin:Native, Latin:Native" into (native, latin) pairs."""
    pairs = []
    for item in text.split(","):
        latin, _, native = item.strip().partition(":")
        pairs.append((native, latin))
    return tuple(pairs)


@dataclass(frozen=True)
class NamePool:
    """First names (female, male) and family names of one culture."""

    female: tuple[Name, ...]
    male: tuple[Name, ...]
    family: tuple[Name, ...]
    native_share: float = 0.0  # share of people who type their name in the native script
    family_first: bool = False  # Japanese and Korean order: family name first when native


NAME_POOLS: dict[str, NamePool] = {
    "us": NamePool(
        _latin("Emma", "Olivia", "Ava", "Sophia", "Isabella", "Mia", "Charlotte", "Amelia",
               "Harper", "Evelyn", "Emily", "Madison", "Ashley", "Jessica", "Sarah", "Jennifer",
               "Maria", "Camila", "Grace", "Hannah"),
        _latin("Liam", "Noah", "Oliver", "James", "Elijah", "William", "Benjamin", "Lucas",
               "Michael", "David", "Daniel", "Matthew", "Christopher", "Joshua", "Jose",
               "Carlos", "Wei", "Kevin", "Ethan", "Tyler"),
        _latin("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
               "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas",
               "Taylor", "Moore", "Jackson", "Martin", "Lee", "Nguyen", "Kim", "Chen", "Patel",
               "Clark", "Lewis", "Walker", "Hall", "Young", "Allen", "O'Connor", "Rivera"),
    ),
    "gb": NamePool(
        _latin("Olivia", "Amelia", "Isla", "Ava", "Lily", "Freya", "Sophie", "Grace", "Emily",
               "Charlotte", "Poppy", "Ella", "Hannah", "Chloe", "Evie", "Florence"),
        _latin("Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Arthur", "Oscar", "Charlie",
               "Thomas", "James", "William", "Alfie", "Henry", "Mohammed", "Rory"),
        _latin("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
               "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
               "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan", "Hughes", "Edwards",
               "Murphy", "O'Neill"),
    ),
    "de": NamePool(
        _latin("Sophie", "Marie", "Emma", "Mia", "Hannah", "Lena", "Lea", "Anna", "Laura",
               "Julia", "Katharina", "Sabine", "Jana", "Jülide", "Ursula", "Franziska"),
        _latin("Lukas", "Leon", "Finn", "Jonas", "Paul", "Felix", "Maximilian", "Tobias", "Jan",
               "Stefan", "Michael", "Andreas", "Thomas", "Jürgen", "Emre", "Björn"),
        _latin("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
               "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
               "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann",
               "Lange", "Y\u0131lmaz", "Kaya", "Nowak"),
    ),
    "fr": NamePool(
        _latin("Emma", "Louise", "Jade", "Alice", "Chloé", "Léa", "Manon", "Camille", "Inès",
               "Juliette", "Sarah", "Zoé", "Hélène", "Élodie", "Margaux", "Anaïs"),
        _latin("Gabriel", "Louis", "Raphaël", "Jules", "Adam", "Lucas", "Hugo", "Arthur",
               "Nathan", "Théo", "Mathis", "Antoine", "Nicolas", "Julien", "Yanis", "Jérôme"),
        _latin("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
               "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
               "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier",
               "Dupont", "Benali", "Nguyen"),
    ),
    "es": NamePool(
        _latin("Lucía", "Sofía", "Martina", "María", "Paula", "Julia", "Daniela", "Valeria",
               "Alba", "Emma", "Carmen", "Laura", "Marta", "Elena", "Nerea", "Montserrat"),
        _latin("Hugo", "Martín", "Lucas", "Mateo", "Leo", "Daniel", "Alejandro", "Pablo",
               "Manuel", "Álvaro", "Javier", "José", "David", "Sergio", "Iker", "Jordi"),
        _latin("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez",
               "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno",
               "Muñoz", "Álvarez", "Romero", "Alonso", "Gutiérrez", "Navarro", "Torres",
               "Domínguez", "Vázquez", "Ramos", "Puig"),
    ),
    "jp": NamePool(
        _pairs("Yui:結衣, Aoi:葵, Hina:陽菜, Sakura:さくら, Mei:芽依, Yuna:優奈, Miyu:美優, "
               "Haruka:遥, Nanami:七海, Rin:凛, Yoko:洋子, Keiko:恵子, Akiko:明子, Tomoko:智子, "
               "Misaki:美咲, Ayaka:彩花"),
        _pairs("Haruto:陽翔, Ren:蓮, Sota:蒼太, Yuto:悠斗, Hiroshi:浩, Takeshi:武, Kenji:健二, "
               "Daiki:大輝, Kaito:海斗, Riku:陸, Shota:翔太, Takumi:拓海, Kazuki:和樹, "
               "Naoki:直樹, Yusuke:雄介, Makoto:誠"),
        _pairs("Sato:佐藤, Suzuki:鈴木, Takahashi:高橋, Tanaka:田中, Watanabe:渡辺, Ito:伊藤, "
               "Yamamoto:山本, Nakamura:中村, Kobayashi:小林, Kato:加藤, Yoshida:吉田, "
               "Yamada:山田, Sasaki:佐々木, Yamaguchi:山口, Matsumoto:松本, Inoue:井上, "
               "Kimura:木村, Hayashi:林, Shimizu:清水, Mori:森"),
        native_share=0.75,
        family_first=True,
    ),
    "kr": NamePool(
        _pairs("Ji-woo:지우, Seo-yeon:서연, Min-ji:민지, Ha-eun:하은, Soo-ah:수아, Ji-min:지민, "
               "Yu-na:유나, Eun-ji:은지, Hye-jin:혜진, Su-bin:수빈, Da-eun:다은, Ye-jin:예진"),
        _pairs("Min-jun:민준, Seo-jun:서준, Do-yun:도윤, Ha-jun:하준, Ji-ho:지호, Jun-seo:준서, "
               "Hyun-woo:현우, Sung-min:성민, Jae-won:재원, Dong-hyun:동현, Young-ho:영호, "
               "Tae-yang:태양"),
        _pairs("Kim:김, Lee:이, Park:박, Choi:최, Jung:정, Kang:강, Cho:조, Yoon:윤, Jang:장, "
               "Lim:임, Han:한, Oh:오, Seo:서, Shin:신, Kwon:권"),
        native_share=0.7,
        family_first=True,
    ),
    "in": NamePool(
        _latin("Priya", "Ananya", "Aditi", "Kavya", "Diya", "Isha", "Pooja", "Neha", "Sneha",
               "Riya", "Aishwarya", "Lakshmi", "Meera", "Divya", "Shreya", "Fatima"),
        _latin("Aarav", "Vivaan", "Aditya", "Arjun", "Rohan", "Rahul", "Vikram", "Karan",
               "Siddharth", "Amit", "Rajesh", "Sanjay", "Arun", "Harish", "Imran", "Gurpreet"),
        _latin("Sharma", "Verma", "Gupta", "Singh", "Kumar", "Patel", "Reddy", "Iyer", "Nair",
               "Menon", "Rao", "Joshi", "Mehta", "Chopra", "Das", "Banerjee", "Mukherjee",
               "Pillai", "Shah", "Desai", "Khan", "Fernandes"),
    ),
    "ae": NamePool(
        _pairs("Fatima:فاطمة, Aisha:عائشة, Mariam:مريم, Noura:نورة, Sara:سارة, Hessa:حصة, "
               "Latifa:لطيفة, Reem:ريم, Layla:ليلى, Maha:مها, Shamma:شما, Amna:آمنة"),
        _pairs("Mohammed:محمد, Ahmed:أحمد, Omar:عمر, Khalid:خالد, Abdullah:عبدالله, "
               "Yousef:يوسف, Saeed:سعيد, Hamdan:حمدان, Sultan:سلطان, Rashid:راشد, Ali:علي, "
               "Majid:ماجد"),
        _pairs("Al Mansouri:المنصوري, Al Nuaimi:النعيمي, Al Shamsi:الشامسي, "
               "Al Hashimi:الهاشمي, Al Marzouqi:المرزوقي, Al Ketbi:الكتبي, "
               "Al Dhaheri:الظاهري, Al Suwaidi:السويدي, Al Falasi:الفلاسي, "
               "Al Mazrouei:المزروعي"),
        native_share=0.3,
    ),
    "sa": NamePool(
        _pairs("Fatimah:فاطمة, Nourah:نورة, Sarah:سارة, Reem:ريم, Hind:هند, Lama:لمى, "
               "Jawaher:جواهر, Ghadah:غادة, Haifa:هيفاء, Dana:دانة, Asma:أسماء, Rawan:روان"),
        _pairs("Mohammed:محمد, Abdulaziz:عبدالعزيز, Faisal:فيصل, Turki:تركي, Saud:سعود, "
               "Fahad:فهد, Nasser:ناصر, Abdulrahman:عبدالرحمن, Sultan:سلطان, Bandar:بندر, "
               "Majed:ماجد, Yazeed:يزيد"),
        _pairs("Al Qahtani:القحطاني, Al Otaibi:العتيبي, Al Harbi:الحربي, Al Ghamdi:الغامدي, "
               "Al Zahrani:الزهراني, Al Dosari:الدوسري, Al Shehri:الشهري, Al Mutairi:المطيري, "
               "Al Anazi:العنزي, Al Shammari:الشمري"),
        native_share=0.35,
    ),
    "ph": NamePool(
        _latin("Maria", "Kristine", "Jasmine", "Angelica", "Joy", "Mary Grace", "Princess",
               "Jennelyn"),
        _latin("Jose", "Mark", "John Paul", "Christian", "Angelo", "Rommel", "Jericho", "Ramon"),
        _latin("Santos", "Reyes", "Cruz", "Bautista", "Garcia", "Mendoza", "Dela Cruz",
               "Villanueva", "Ramos", "Aquino"),
    ),
    "br": NamePool(
        _latin("Maria", "Ana", "Helena", "Alice", "Laura", "Manuela", "Valentina", "Sophia",
               "Beatriz", "Júlia", "Larissa", "Camila", "Fernanda", "Gabriela", "Letícia",
               "Vitória"),
        _latin("Miguel", "Arthur", "Gael", "Heitor", "Théo", "Davi", "Gabriel", "Bernardo",
               "João", "Pedro", "Lucas", "Rafael", "Thiago", "Felipe", "Caio", "Luiz"),
        _latin("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves",
               "Pereira", "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida",
               "Lopes", "Soares", "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias",
               "Nascimento", "Araújo", "Conceição"),
    ),
    "au": NamePool(
        _latin("Charlotte", "Olivia", "Amelia", "Isla", "Mia", "Ava", "Grace", "Chloe", "Zoe",
               "Sienna", "Matilda", "Ruby", "Harper", "Willow", "Mei", "Priya"),
        _latin("Oliver", "Noah", "Jack", "William", "Leo", "Lucas", "Thomas", "Henry",
               "Charlie", "Cooper", "Hudson", "Xavier", "Liam", "Mason", "Kai", "Arjun"),
        _latin("Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White",
               "Martin", "Anderson", "Thompson", "Nguyen", "Thomas", "Walker", "Harris", "Lee",
               "Ryan", "Robinson", "Kelly", "King", "Chen", "Wang", "Singh", "Murphy",
               "O'Brien"),
    ),
}  # fmt: skip

# Which name pools a market's customers come from, and the language such a customer prefers
# (None: the market's usual languages). The Gulf markets are largely expatriate.
MARKET_POOLS: dict[str, tuple[tuple[str, float, str | None], ...]] = {
    "US": (("us", 1.0, None),),
    "GB": (("gb", 1.0, None),),
    "DE": (("de", 1.0, None),),
    "FR": (("fr", 1.0, None),),
    "ES": (("es", 1.0, None),),
    "JP": (("jp", 1.0, None),),
    "KR": (("kr", 1.0, None),),
    "IN": (("in", 1.0, None),),
    "AE": (("ae", 0.45, "ar"), ("in", 0.3, "en"), ("ph", 0.1, "en"), ("gb", 0.15, "en")),
    "SA": (("sa", 0.88, None), ("in", 0.07, "en"), ("ph", 0.05, "en")),
    "BR": (("br", 1.0, None),),
    "AU": (("au", 1.0, None),),
}

# Mail domains under the reserved `.example` top-level domain (RFC 2606): they look like the
# market's usual providers but can never reach a real mailbox.
EMAIL_DOMAINS: dict[str, tuple[tuple[str, float], ...]] = {
    "US": (("gmail.example", 0.5), ("yahoo.example", 0.15), ("outlook.example", 0.15),
           ("icloud.example", 0.15), ("aol.example", 0.05)),
    "GB": (("gmail.example", 0.45), ("hotmail.example", 0.2), ("btinternet.example", 0.15),
           ("icloud.example", 0.1), ("sky.example", 0.1)),
    "DE": (("gmx.example", 0.3), ("web.example", 0.25), ("gmail.example", 0.3),
           ("t-online.example", 0.15)),
    "FR": (("gmail.example", 0.4), ("orange.example", 0.25), ("free.example", 0.15),
           ("laposte.example", 0.1), ("hotmail.example", 0.1)),
    "ES": (("gmail.example", 0.55), ("hotmail.example", 0.3), ("telefonica.example", 0.15)),
    "JP": (("docomo.example", 0.3), ("yahoo.example", 0.3), ("gmail.example", 0.3),
           ("softbank.example", 0.1)),
    "KR": (("naver.example", 0.5), ("daum.example", 0.2), ("gmail.example", 0.3)),
    "IN": (("gmail.example", 0.75), ("yahoo.example", 0.1), ("rediffmail.example", 0.15)),
    "AE": (("gmail.example", 0.55), ("hotmail.example", 0.25), ("emirates.example", 0.2)),
    "SA": (("gmail.example", 0.6), ("hotmail.example", 0.25), ("stc.example", 0.15)),
    "BR": (("gmail.example", 0.6), ("hotmail.example", 0.15), ("uol.example", 0.15),
           ("bol.example", 0.1)),
    "AU": (("gmail.example", 0.45), ("bigpond.example", 0.2), ("outlook.example", 0.2),
           ("optusnet.example", 0.15)),
}  # fmt: skip


@dataclass(frozen=True)
class PhonePlan:
    """How a market's mobile numbers look: leading digits after the country code and length."""

    prefixes: tuple[str, ...]
    national_length: int
    lead_first_digits: str = "0123456789"


PHONE_PLANS: dict[str, PhonePlan] = {
    "US": PhonePlan(("212", "213", "305", "312", "415", "512", "617", "646", "702", "713",
                     "206", "303", "404", "503", "602", "718", "919", "630", "773", "858"),
                    10, "23456789"),
    "GB": PhonePlan(("740", "741", "742", "743", "747", "748", "749", "750", "751", "752",
                     "753", "754", "756", "757", "758", "759", "770", "771", "772", "773",
                     "774", "775", "776", "777", "778", "779", "780", "781", "782", "783",
                     "784", "785", "786", "787", "788", "789", "790", "791", "792", "793",
                     "794", "795", "796", "797", "798", "799"), 10),
    "DE": PhonePlan(("151", "152", "157", "160", "162", "163", "170", "171", "172", "173",
                     "174", "175", "176", "177", "178", "179"), 11),
    "FR": PhonePlan(("6",), 9, "123456789"),
    "ES": PhonePlan(("6",), 9),
    "JP": PhonePlan(("70", "80", "90"), 10, "123456789"),
    "KR": PhonePlan(("10",), 10, "23456789"),
    "IN": PhonePlan(("70", "74", "76", "77", "81", "84", "85", "88", "90", "91", "93", "94",
                     "95", "96", "97", "98", "99"), 10),
    "AE": PhonePlan(("50", "52", "54", "55", "56", "58"), 9),
    "SA": PhonePlan(("50", "53", "54", "55", "56", "58", "59"), 9),
    "BR": PhonePlan(("119", "219", "319", "419", "519", "619", "719", "819", "859"), 11,
                    "6789"),
    "AU": PhonePlan(("40", "41", "42", "43", "46"), 9),
}  # fmt: skip

_UNIQUE_DIGITS = 6
MAX_PEOPLE = 10**_UNIQUE_DIGITS  # phone numbers stay unique for this many customers


@dataclass(frozen=True)
class Person:
    """Who a demo customer is."""

    first_name: str
    last_name: str
    first_latin: str
    last_latin: str
    language: str
    gender: str


def make_person(rng: random.Random, market: Market) -> Person:
    """Draw a person of the market: a name from one of its name pools and their language."""
    pools = MARKET_POOLS[market.code]
    key = weighted_choice(tuple((pool, weight) for pool, weight, _ in pools), rng.random())
    language_override = next(language for pool, _, language in pools if pool == key)
    pool = NAME_POOLS[key]
    gender = "female" if rng.random() < 0.56 else "male"
    first = rng.choice(pool.female if gender == "female" else pool.male)
    last = rng.choice(pool.family)
    native = rng.random() < pool.native_share
    language = language_override or weighted_choice(market.languages, rng.random())
    if native and language_override is None:
        return Person(first[0], last[0], first[1], last[1], language, gender)
    return Person(first[1], last[1], first[1], last[1], language, gender)


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters and digits of `text` (accents dropped, ß spelled out)."""
    spelled = text.replace("\u0131", "i").replace("ß", "ss").replace("ø", "o").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", spelled)
    return "".join(char for char in decomposed.lower() if char.isascii() and char.isalnum())


def make_email(
    rng: random.Random, person: Person, market: Market, birth_year: int | None, taken: set[str]
) -> str:
    """A unique, plausible email address for the person (recorded in `taken`)."""
    first, last = ascii_slug(person.first_latin), ascii_slug(person.last_latin)
    domain = weighted_choice(EMAIL_DOMAINS[market.code], rng.random())
    year = birth_year or rng.randint(1965, 2004)
    patterns = (
        f"{first}.{last}", f"{first}{last}", f"{first}_{last}", f"{first[0]}{last}",
        f"{first}.{last}{year % 100:02d}", f"{first}{year}", f"{last}.{first}",
        f"{first}{rng.randint(1, 99)}",
    )  # fmt: skip
    local = patterns[min(int(rng.random() * len(patterns)), len(patterns) - 1)]
    address = f"{local}@{domain}"
    while address in taken:
        address = f"{local}{rng.randint(1, 9999)}@{domain}"
    taken.add(address)
    return address


def make_phone(rng: random.Random, market: Market, index: int) -> str | None:
    """A valid mobile number of the market in E.164, unique for each `index` below MAX_PEOPLE."""
    plan = PHONE_PLANS[market.code]
    country_code = phonenumbers.country_code_for_region(market.code)
    # A bijection of [0, 10**6): distinct customers never share the last six digits.
    unique = (index * 738_163 + 291_043) % MAX_PEOPLE
    tail = f"{unique:0{_UNIQUE_DIGITS}d}"
    for _ in range(40):
        prefix = rng.choice(plan.prefixes)
        lead_length = plan.national_length - len(prefix) - _UNIQUE_DIGITS
        lead = rng.choice(plan.lead_first_digits) + "".join(
            str(rng.randrange(10)) for _ in range(lead_length - 1)
        )
        national = f"{prefix}{lead}{tail}"
        number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
        if phonenumbers.region_code_for_number(number) != market.code:
            continue  # e.g. +44 7781 is Guernsey, not the United Kingdom
        if phonenumbers.number_type(number) in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return f"+{country_code}{national}"
    return None


_AGE_BANDS = ((18, 24, 0.18), (25, 34, 0.32), (35, 44, 0.24), (45, 54, 0.15), (55, 72, 0.11))


def make_birthday(rng: random.Random, as_of: date) -> date:
    """A birthday for an adult shopper (most between 25 and 44)."""
    draw = rng.random() * sum(weight for _, _, weight in _AGE_BANDS)
    band = _AGE_BANDS[-1]
    for candidate in _AGE_BANDS:
        if draw < candidate[2]:
            band = candidate
            break
        draw -= candidate[2]
    age = rng.randint(band[0], band[1])
    return as_of - timedelta(days=int(age * 365.25) + rng.randrange(365))
