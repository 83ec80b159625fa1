"""Request and response shapes of the public contract that more than one process serves: the
wallet answers them and the gateway documents and checks them."""

from pydantic import BaseModel, Field

from shared.money import Amount


class Balance(BaseModel):
    user_id: int
    username: str
    balance: float = Field(description="Rupees.", examples=[100.0])


class SpendRequest(BaseModel):
    amount: Amount
    description: str = Field("General Spend", min_length=1, max_length=255)
