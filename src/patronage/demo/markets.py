"""The demo store's twelve markets: currency, languages, time zones, routes, taxes and holidays."""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

STORE_NAME = "Jade Lantern Home & Living (demo)"
BASE_CURRENCY = "USD"
STORE_TIMEZONE = "Asia/Shanghai"
STORE_LANGUAGE = "en"


@dataclass(frozen=True)
class Route:
    """How an order reaches a market: from which warehouse, by which carriers, in how many days."""

    name: str
    warehouse: str
    share: float
    carriers: tuple[tuple[str, float], ...]
    processing_days: tuple[float, float]  # from payment to hand-over to the carrier
    transit_days: tuple[float, float, float]  # minimum, most likely, maximum
    promised_days: int  # from placement to the promised delivery date
    cross_border: bool


@dataclass(frozen=True)
class CurrencyProfile:
    """Where a currency stood against the US dollar on the demo's as-of date and how it moves."""

    code: str
    usd_per_unit: float
    annual_volatility: float  # 0 for a currency pegged to the dollar
    price_step: int  # local prices end on a step: 2,980 JPY, 28,900 KRW, 1,499 INR
    price_ending: float


@dataclass(frozen=True)
class Market:
    """One country the store sells to."""

    code: str
    name: str
    currency: str
    languages: tuple[tuple[str, float], ...]
    timezones: tuple[tuple[str, float], ...]
    customer_share: float
    launch_day: int  # days after the demo's first day when the store began selling here
    price_index: float  # local list price relative to the converted US price
    tax_rate: float
    tax_included: bool  # VAT-style prices include tax; otherwise tax is added at checkout
    shipping_fee_usd: float
    free_shipping_over_usd: float
    routes: tuple[Route, ...]
    holidays: tuple[str, ...]
    category_affinity: dict[str, float] = field(default_factory=dict)
    phone_share: float = 0.5
    sms_optin: float = 0.25
    whatsapp_optin: float = 0.25
    email_optin: float = 0.62
    double_optin: bool = False  # email consent starts as `pending` until confirmed
    payment_methods: tuple[tuple[str, float], ...] = (("card", 0.7), ("paypal", 0.3))


CURRENCIES: dict[str, CurrencyProfile] = {
    profile.code: profile
    for profile in (
        CurrencyProfile("USD", 1.0, 0.0, 1, 0.0),
        CurrencyProfile("GBP", 1.28, 0.08, 1, 0.01),
        CurrencyProfile("EUR", 1.09, 0.07, 1, 0.01),
        CurrencyProfile("JPY", 0.0067, 0.10, 100, 20),
        CurrencyProfile("KRW", 0.00072, 0.09, 1000, 100),
        CurrencyProfile("INR", 0.0118, 0.05, 50, 1),
        CurrencyProfile("AED", 1 / 3.6725, 0.0, 1, 0.0),
        CurrencyProfile("SAR", 1 / 3.75, 0.0, 1, 0.0),
        CurrencyProfile("BRL", 0.18, 0.14, 1, 0.10),
        CurrencyProfile("AUD", 0.655, 0.10, 1, 0.01),
    )
}


def _china(
    share: float, transit: tuple[float, float, float], promised: int, *extra: tuple[str, float]
) -> Route:
    carriers = (("YunExpress", 0.34), ("4PX", 0.22), ("Cainiao", 0.24), ("China Post", 0.12),
                ("DHL eCommerce", 0.08), *extra)  # fmt: skip
    return Route("China direct", "CN-Shenzhen", share, carriers, (0.6, 3.5), transit, promised,
                 cross_border=True)  # fmt: skip


_EU_WAREHOUSE = "DE-Leipzig"

MARKETS: tuple[Market, ...] = (
    Market(
        "US", "United States", "USD", (("en", 0.9), ("es", 0.1)),
        (("America/New_York", 0.42), ("America/Chicago", 0.25), ("America/Denver", 0.08),
         ("America/Los_Angeles", 0.25)),
        0.24, 0, 1.0, 0.07, False, 5.99, 49.0,
        (Route("US warehouse", "US-NewJersey", 0.55, (("USPS", 0.6), ("UPS", 0.4)), (0.2, 1.5),
               (1.5, 3.0, 6.0), 7, cross_border=False),
         _china(0.45, (7.0, 11.0, 20.0), 20)),
        ("black_friday", "cyber_monday", "christmas", "mothers_day_may", "valentines",
         "summer_sale", "singles_day", "september_festival", "lunar_new_year"),
        {"PET": 1.4, "TEC": 1.2, "LIT": 1.1}, phone_share=0.55, sms_optin=0.32,
        whatsapp_optin=0.08, payment_methods=(("card", 0.62), ("paypal", 0.28),
                                              ("apple_pay", 0.10)),
    ),
    Market(
        "GB", "United Kingdom", "GBP", (("en", 1.0),), (("Europe/London", 1.0),),
        0.09, 0, 1.0, 0.20, True, 4.99, 45.0,
        (Route("UK warehouse", "GB-Coventry", 0.45, (("Royal Mail", 0.6), ("Evri", 0.4)),
               (0.2, 1.5), (1.0, 2.0, 5.0), 6, cross_border=False),
         _china(0.55, (6.0, 10.0, 18.0), 18)),
        ("black_friday", "christmas", "boxing_day", "mothering_sunday", "summer_sale",
         "singles_day", "september_festival", "lunar_new_year"),
        {"TEA": 1.6, "PET": 1.3}, phone_share=0.5, sms_optin=0.28, whatsapp_optin=0.22,
    ),
    Market(
        "DE", "Germany", "EUR", (("de", 0.93), ("en", 0.07)), (("Europe/Berlin", 1.0),),
        0.09, 0, 1.05, 0.19, True, 4.99, 45.0,
        (Route("EU warehouse", _EU_WAREHOUSE, 0.5, (("DHL Paket", 0.7), ("Hermes", 0.3)),
               (0.2, 1.5), (1.0, 2.0, 4.0), 6, cross_border=False),
         _china(0.5, (7.0, 11.0, 20.0), 20)),
        ("black_friday", "christmas", "mothers_day_may", "summer_sale", "singles_day",
         "september_festival", "lunar_new_year"),
        {"KIT": 1.2, "TEX": 1.3, "FIT": 1.2}, phone_share=0.35, sms_optin=0.12,
        whatsapp_optin=0.2, email_optin=0.48, double_optin=True,
        payment_methods=(("paypal", 0.45), ("card", 0.3), ("klarna", 0.25)),
    ),
    Market(
        "FR", "France", "EUR", (("fr", 0.95), ("en", 0.05)), (("Europe/Paris", 1.0),),
        0.07, 0, 1.05, 0.20, True, 4.99, 45.0,
        (Route("EU warehouse", _EU_WAREHOUSE, 0.35, (("DPD", 0.5), ("GLS", 0.5)), (0.2, 1.5),
               (2.0, 3.5, 6.0), 8, cross_border=False),
         _china(0.65, (7.0, 12.0, 21.0), 21, ("La Poste Colissimo", 0.05))),
        ("black_friday", "christmas", "winter_sales", "summer_sales", "mothers_day_france",
         "singles_day", "september_festival", "lunar_new_year"),
        {"BEA": 1.3, "TEX": 1.2}, phone_share=0.45, sms_optin=0.2, whatsapp_optin=0.25,
    ),
    Market(
        "ES", "Spain", "EUR", (("es", 0.9), ("ca", 0.07), ("en", 0.03)),
        (("Europe/Madrid", 0.95), ("Atlantic/Canary", 0.05)),
        0.05, 0, 1.05, 0.21, True, 4.99, 45.0,
        (Route("EU warehouse", _EU_WAREHOUSE, 0.3, (("DPD", 0.4), ("GLS", 0.6)), (0.2, 1.5),
               (2.0, 4.0, 7.0), 9, cross_border=False),
         _china(0.7, (8.0, 12.0, 22.0), 22, ("Correos", 0.05))),
        ("black_friday", "christmas", "rebajas_winter", "rebajas_summer", "mothers_day_spain",
         "singles_day", "september_festival", "lunar_new_year"),
        {"FIT": 1.2, "BEA": 1.1}, phone_share=0.6, sms_optin=0.15, whatsapp_optin=0.5,
    ),
    Market(
        "JP", "Japan", "JPY", (("ja", 0.97), ("en", 0.03)), (("Asia/Tokyo", 1.0),),
        0.07, 0, 1.0, 0.10, True, 4.99, 49.0,
        (Route("China to Japan", "CN-Shenzhen", 1.0, (("Yamato via Cainiao", 0.5),
               ("Japan Post EMS", 0.3), ("Sagawa via 4PX", 0.2)), (0.6, 3.0), (2.0, 4.0, 8.0),
               10, cross_border=True),),
        ("black_friday", "christmas_light", "year_end_japan", "mothers_day_may", "summer_sale",
         "singles_day", "september_festival", "lunar_new_year"),
        {"TEA": 1.4, "BEA": 1.3, "KIT": 1.2}, phone_share=0.3, sms_optin=0.1,
        whatsapp_optin=0.03, payment_methods=(("card", 0.6), ("konbini", 0.15),
                                              ("paypay", 0.25)),
    ),
    Market(
        "KR", "South Korea", "KRW", (("ko", 0.98), ("en", 0.02)), (("Asia/Seoul", 1.0),),
        0.05, 180, 0.95, 0.0, True, 4.99, 49.0,
        (Route("China to Korea", "CN-Qingdao", 1.0, (("CJ Logistics", 0.6),
               ("Korea Post EMS", 0.4)), (0.5, 2.5), (2.0, 3.5, 7.0), 9, cross_border=True),),
        ("korea_sale_festa", "christmas_light", "chuseok", "seollal", "singles_day",
         "september_festival"),
        {"BEA": 1.8, "TEC": 1.2}, phone_share=0.55, sms_optin=0.3, whatsapp_optin=0.03,
        payment_methods=(("card", 0.55), ("kakaopay", 0.3), ("naverpay", 0.15)),
    ),
    Market(
        "IN", "India", "INR", (("en", 0.7), ("hi", 0.3)), (("Asia/Kolkata", 1.0),),
        0.06, 365, 0.85, 0.0, True, 7.99, 39.0,
        (_china(1.0, (11.0, 16.0, 24.0), 24, ("Delhivery", 0.1)),),
        ("diwali", "independence_day_sale", "christmas_light", "singles_day",
         "september_festival", "lunar_new_year"),
        {"TEC": 1.4, "LIT": 1.3, "KIT": 1.1}, phone_share=0.85, sms_optin=0.35,
        whatsapp_optin=0.6, payment_methods=(("upi", 0.5), ("card", 0.3), ("paypal", 0.2)),
    ),
    Market(
        "AE", "United Arab Emirates", "AED", (("ar", 0.45), ("en", 0.55)),
        (("Asia/Dubai", 1.0),),
        0.05, 180, 1.05, 0.05, True, 5.99, 49.0,
        (_china(1.0, (6.0, 10.0, 18.0), 18, ("Aramex", 0.15)),),
        ("ramadan", "eid_al_fitr", "eid_al_adha", "white_friday", "singles_day",
         "september_festival", "lunar_new_year"),
        {"LIT": 1.4, "TEX": 1.2, "BEA": 1.2}, phone_share=0.85, sms_optin=0.3,
        whatsapp_optin=0.55, payment_methods=(("card", 0.6), ("cash_on_delivery", 0.25),
                                              ("tabby", 0.15)),
    ),
    Market(
        "SA", "Saudi Arabia", "SAR", (("ar", 0.85), ("en", 0.15)), (("Asia/Riyadh", 1.0),),
        0.05, 365, 1.05, 0.15, True, 5.99, 49.0,
        (_china(1.0, (7.0, 11.0, 20.0), 20, ("SMSA Express", 0.15)),),
        ("ramadan", "eid_al_fitr", "eid_al_adha", "white_friday", "saudi_national_day",
         "singles_day", "september_festival", "lunar_new_year"),
        {"LIT": 1.3, "TEX": 1.3, "BEA": 1.2}, phone_share=0.9, sms_optin=0.3,
        whatsapp_optin=0.6, payment_methods=(("mada", 0.45), ("card", 0.25),
                                             ("cash_on_delivery", 0.3)),
    ),
    Market(
        "BR", "Brazil", "BRL", (("pt", 1.0),), (("America/Sao_Paulo", 0.85),
                                               ("America/Manaus", 0.05),
                                               ("America/Recife", 0.1)),
        0.08, 365, 1.10, 0.20, False, 7.99, 49.0,
        (_china(1.0, (13.0, 18.0, 24.0), 28, ("Correios", 0.15)),),
        ("black_friday_brazil", "christmas", "carnival", "mothers_day_may", "valentines_brazil",
         "singles_day", "september_festival", "lunar_new_year"),
        {"BEA": 1.3, "TEC": 1.3, "FIT": 1.1}, phone_share=0.85, sms_optin=0.25,
        whatsapp_optin=0.65, payment_methods=(("pix", 0.45), ("card", 0.4), ("boleto", 0.15)),
    ),
    Market(
        "AU", "Australia", "AUD", (("en", 1.0),),
        (("Australia/Sydney", 0.4), ("Australia/Melbourne", 0.32), ("Australia/Brisbane", 0.17),
         ("Australia/Perth", 0.11)),
        0.10, 0, 1.10, 0.10, True, 6.99, 59.0,
        (Route("AU warehouse", "AU-Sydney", 0.25, (("Australia Post", 0.7), ("Aramex AU", 0.3)),
               (0.3, 1.5), (2.0, 3.0, 6.0), 7, cross_border=False),
         _china(0.75, (7.0, 10.0, 18.0), 18)),
        ("black_friday", "click_frenzy", "christmas", "boxing_day", "eofy_sales",
         "mothers_day_may", "singles_day", "september_festival", "lunar_new_year"),
        {"FIT": 1.4, "PET": 1.3, "TEA": 1.1}, phone_share=0.55, sms_optin=0.3,
        whatsapp_optin=0.15, payment_methods=(("card", 0.55), ("paypal", 0.25),
                                              ("afterpay", 0.2)),
    ),
)  # fmt: skip

MARKETS_BY_CODE: dict[str, Market] = {market.code: market for market in MARKETS}


# --- Holidays ---------------------------------------------------------------------------------
# Dates of the lunar and Islamic holidays (approximate for the latter: they depend on the moon
# sighting). Years outside these tables simply have no such holiday.

_LUNAR_NEW_YEAR = {
    2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10),
    2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
    2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
}  # fmt: skip
_RAMADAN_START = {
    2022: date(2022, 4, 2), 2023: date(2023, 3, 23), 2024: date(2024, 3, 11),
    2025: date(2025, 3, 1), 2026: date(2026, 2, 18), 2027: date(2027, 2, 8),
    2028: date(2028, 1, 28), 2029: date(2029, 1, 16), 2030: date(2030, 1, 6),
}  # fmt: skip
_EID_AL_FITR = {
    2022: date(2022, 5, 2), 2023: date(2023, 4, 21), 2024: date(2024, 4, 10),
    2025: date(2025, 3, 30), 2026: date(2026, 3, 20), 2027: date(2027, 3, 10),
    2028: date(2028, 2, 27), 2029: date(2029, 2, 14), 2030: date(2030, 2, 4),
}  # fmt: skip
_EID_AL_ADHA = {
    2022: date(2022, 7, 9), 2023: date(2023, 6, 28), 2024: date(2024, 6, 16),
    2025: date(2025, 6, 6), 2026: date(2026, 5, 27), 2027: date(2027, 5, 16),
    2028: date(2028, 5, 5), 2029: date(2029, 4, 24), 2030: date(2030, 4, 13),
}  # fmt: skip
_DIWALI = {
    2022: date(2022, 10, 24), 2023: date(2023, 11, 12), 2024: date(2024, 11, 1),
    2025: date(2025, 10, 21), 2026: date(2026, 11, 8), 2027: date(2027, 10, 29),
    2028: date(2028, 10, 17), 2029: date(2029, 11, 5), 2030: date(2030, 10, 26),
}  # fmt: skip
_CHUSEOK = {
    2022: date(2022, 9, 10), 2023: date(2023, 9, 29), 2024: date(2024, 9, 17),
    2025: date(2025, 10, 6), 2026: date(2026, 9, 25), 2027: date(2027, 9, 15),
    2028: date(2028, 10, 3), 2029: date(2029, 9, 22), 2030: date(2030, 9, 12),
}  # fmt: skip


def easter_sunday(year: int) -> date:
    """Western Easter Sunday of `year` (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    """The `nth` (1-based; -1 for the last) `weekday` (Monday = 0) of a month."""
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _thanksgiving(year: int) -> date:
    return nth_weekday(year, 11, 3, 4)


@dataclass(frozen=True)
class Holiday:
    """A recurring occasion: its peak day each year and how it moves demand around that day."""

    key: str
    name: str
    day_of: Callable[[int], date | None]
    before: int  # days of build-up before the peak
    after: int  # days of after-glow
    peak: float  # demand multiplier on the peak day
    around: float  # demand multiplier during the build-up and after-glow
    greeting: bool = True  # an occasion for a holiday greeting campaign

    def on(self, year: int) -> date | None:
        """The peak day in `year`, or None when the holiday is not known for that year."""
        return self.day_of(year)


def _fixed(month: int, day: int) -> Callable[[int], date | None]:
    return lambda year: date(year, month, day)


HOLIDAYS: dict[str, Holiday] = {
    holiday.key: holiday
    for holiday in (
        Holiday("black_friday", "Black Friday", lambda y: _thanksgiving(y) + timedelta(days=1),
                6, 3, 3.0, 1.5),
        Holiday("cyber_monday", "Cyber Monday", lambda y: _thanksgiving(y) + timedelta(days=4),
                0, 0, 2.0, 1.0, greeting=False),
        Holiday("white_friday", "White Friday", lambda y: _thanksgiving(y) + timedelta(days=1),
                6, 3, 2.6, 1.4),
        Holiday("black_friday_brazil", "Black Friday",
                lambda y: _thanksgiving(y) + timedelta(days=1), 8, 3, 3.6, 1.7),
        Holiday("christmas", "Christmas", _fixed(12, 25), 20, 0, 1.0, 1.45),
        Holiday("christmas_light", "Christmas", _fixed(12, 25), 14, 0, 1.0, 1.15),
        Holiday("boxing_day", "Boxing Day", _fixed(12, 26), 0, 2, 2.2, 1.3),
        Holiday("valentines", "Valentine's Day", _fixed(2, 14), 8, 0, 1.1, 1.2),
        Holiday("valentines_brazil", "Dia dos Namorados", _fixed(6, 12), 8, 0, 1.1, 1.3),
        Holiday("mothers_day_may", "Mother's Day", lambda y: nth_weekday(y, 5, 6, 2), 10, 0,
                1.0, 1.25),
        Holiday("mothering_sunday", "Mothering Sunday",
                lambda y: easter_sunday(y) - timedelta(days=21), 10, 0, 1.0, 1.25),
        Holiday("mothers_day_france", "Fête des mères", lambda y: nth_weekday(y, 5, 6, -1), 10, 0,
                1.0, 1.25),
        Holiday("mothers_day_spain", "Día de la Madre", lambda y: nth_weekday(y, 5, 6, 1), 10, 0,
                1.0, 1.25),
        Holiday("summer_sale", "Summer Sale", lambda y: nth_weekday(y, 7, 1, 2), 1, 2, 1.6, 1.35,
                greeting=False),
        Holiday("winter_sales", "Soldes d'hiver", lambda y: nth_weekday(y, 1, 2, 2), 0, 20, 1.5,
                1.2, greeting=False),
        Holiday("summer_sales", "Soldes d'été", lambda y: nth_weekday(y, 6, 2, 4), 0, 20, 1.5,
                1.2, greeting=False),
        Holiday("rebajas_winter", "Rebajas de invierno", _fixed(1, 7), 0, 20, 1.5, 1.2,
                greeting=False),
        Holiday("rebajas_summer", "Rebajas de verano", _fixed(7, 1), 0, 20, 1.5, 1.2,
                greeting=False),
        Holiday("year_end_japan", "Oseibo", _fixed(12, 15), 14, 10, 1.3, 1.2),
        Holiday("korea_sale_festa", "Korea Sale Festa", _fixed(11, 1), 0, 14, 1.4, 1.25,
                greeting=False),
        Holiday("chuseok", "Chuseok", lambda y: _CHUSEOK.get(y), 10, 2, 0.8, 1.35),
        Holiday("seollal", "Seollal", lambda y: _LUNAR_NEW_YEAR.get(y), 10, 2, 0.7, 1.2),
        Holiday("diwali", "Diwali", lambda y: _DIWALI.get(y), 21, 2, 1.3, 1.8),
        Holiday("independence_day_sale", "Independence Day Sale", _fixed(8, 15), 4, 1, 1.4, 1.2,
                greeting=False),
        Holiday("ramadan", "Ramadan", lambda y: _RAMADAN_START.get(y), 3, 19, 1.3, 1.3),
        Holiday("eid_al_fitr", "Eid al-Fitr", lambda y: _EID_AL_FITR.get(y), 10, 2, 0.7, 1.6),
        Holiday("eid_al_adha", "Eid al-Adha", lambda y: _EID_AL_ADHA.get(y), 8, 2, 0.8, 1.25),
        Holiday("saudi_national_day", "Saudi National Day", _fixed(9, 23), 4, 0, 1.5, 1.2),
        Holiday("carnival", "Carnaval", lambda y: easter_sunday(y) - timedelta(days=47), 4, 1,
                0.6, 0.8, greeting=False),
        Holiday("click_frenzy", "Click Frenzy", lambda y: nth_weekday(y, 11, 1, 2), 0, 1, 1.8,
                1.4, greeting=False),
        Holiday("eofy_sales", "End of Financial Year Sales", _fixed(6, 30), 14, 0, 1.4, 1.2,
                greeting=False),
        Holiday("singles_day", "11.11 Global Shopping Festival", _fixed(11, 11), 3, 1, 2.4, 1.35),
        Holiday("september_festival", "September Trade Festival", _fixed(9, 1), 0, 9, 1.3, 1.15),
        # The store's suppliers and warehouse in China close: promotions pause, parcels wait.
        Holiday("lunar_new_year", "Lunar New Year", lambda y: _LUNAR_NEW_YEAR.get(y), 7, 10,
                0.75, 0.85),
    )
}  # fmt: skip

# Month-of-year demand for cross-border e-commerce, before holidays (January = index 0).
MONTH_DEMAND = (0.86, 0.84, 0.95, 0.95, 1.0, 0.96, 1.0, 0.95, 1.0, 1.04, 1.2, 1.18)


@dataclass(frozen=True)
class HolidayOccurrence:
    """One holiday in one market on one day."""

    market: str
    key: str
    name: str
    day: date
    greeting: bool


def holidays_between(market: Market, start: date, end: date) -> list[HolidayOccurrence]:
    """The market's holidays whose peak day falls in [start, end], oldest first."""
    found = []
    for key in market.holidays:
        holiday = HOLIDAYS[key]
        for year in range(start.year, end.year + 1):
            day = holiday.on(year)
            if day is not None and start <= day <= end:
                found.append(HolidayOccurrence(market.code, key, holiday.name, day,
                                               holiday.greeting))  # fmt: skip
    return sorted(found, key=lambda occurrence: (occurrence.day, occurrence.key))


def lunar_new_year(year: int) -> date | None:
    """The first day of the Lunar New Year in `year` (None outside the known years)."""
    return _LUNAR_NEW_YEAR.get(year)


def daily_demand(market: Market, start: date, days: int) -> list[float]:
    """The market's relative demand on each of `days` days from `start` (1.0 = an ordinary day)."""
    demand = [MONTH_DEMAND[(start + timedelta(days=offset)).month - 1] for offset in range(days)]
    end = start + timedelta(days=days - 1)
    margin = timedelta(days=40)
    for occurrence in holidays_between(market, start - margin, end + margin):
        holiday = HOLIDAYS[occurrence.key]
        peak_offset = (occurrence.day - start).days
        for offset in range(peak_offset - holiday.before, peak_offset + holiday.after + 1):
            if 0 <= offset < days:
                demand[offset] *= holiday.peak if offset == peak_offset else holiday.around
    return demand


Value = TypeVar("Value")


@functools.lru_cache(maxsize=1024)
def _running_totals(weights: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


def weighted_choice(options: tuple[tuple[Value, float], ...], draw: float) -> Value:
    """Pick from (value, weight) pairs with a uniform draw in [0, 1)."""
    totals = _running_totals(tuple(weight for _, weight in options))
    position = bisect.bisect_right(totals, draw * totals[-1])
    return options[min(position, len(options) - 1)][0]
